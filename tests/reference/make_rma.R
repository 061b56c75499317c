# Pins metafor's frequentist results for bayesmeta.frequentist (rma, confint, predict, rma.mh,
# subgroup analyses, meta-regression, leave1out, regtest, trimfill, funnel).
#
# Usage (from the repository root):  Rscript tests/reference/make_rma.R tests/reference/rma.json
#
# Every model is fitted from a call object; the exact call (deparsed) is stored next to its
# result. Data sets come from metadat; effect sizes are computed here with escalc() and stored
# (yi, vi, and 2x2 counts / moderators where needed) so the Python tests need no R.
# Deterministic: no random numbers. Base R only (JSON written by the small writer below).

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript tests/reference/make_rma.R OUT.json")
out_path <- args[1]

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
})

# ---------------------------------------------------------------------------------------------
# Minimal JSON writer (numbers with 17 significant digits; NA/NaN/Inf -> null)
# ---------------------------------------------------------------------------------------------
json_str <- function(s) {
  s <- gsub("\\", "\\\\", s, fixed = TRUE)
  s <- gsub("\"", "\\\"", s, fixed = TRUE)
  s <- gsub("\n", "\\n", s, fixed = TRUE)
  paste0("\"", s, "\"")
}
json_num <- function(x) ifelse(is.finite(x), sprintf("%.17g", x), "null")
to_json <- function(x, indent = "") {
  inner <- paste0(indent, "  ")
  if (is.null(x)) return("null")
  if (is.factor(x)) x <- as.character(x)
  if (is.list(x)) {
    if (length(x) == 0L) return(if (is.null(names(x))) "[]" else "{}")
    items <- vapply(x, to_json, "", indent = inner)
    if (is.null(names(x))) {
      return(paste0("[\n", inner, paste(items, collapse = paste0(",\n", inner)), "\n", indent, "]"))
    }
    keys <- vapply(names(x), json_str, "")
    return(paste0("{\n", inner, paste(paste0(keys, ": ", items), collapse = paste0(",\n", inner)), "\n", indent, "}"))
  }
  as_array <- inherits(x, "AsIs") || length(x) != 1L
  vals <- if (is.logical(x)) ifelse(is.na(x), "null", ifelse(x, "true", "false"))
          else if (is.numeric(x)) json_num(as.numeric(x))
          else ifelse(is.na(x), "null", vapply(as.character(x), json_str, ""))
  if (as_array) paste0("[", paste(vals, collapse = ", "), "]") else vals
}
arr <- function(x) I(unname(as.vector(x)))
nul <- function(x) if (is.null(x) || length(x) == 0L || all(is.na(x))) NULL else unname(x)

call_text <- function(cl) paste(trimws(deparse(cl, width.cutoff = 500L)), collapse = " ")
run <- function(cl, env) eval(cl, env)

# ---------------------------------------------------------------------------------------------
# Data sets: effect sizes computed with escalc(); counts and moderators kept where used
# ---------------------------------------------------------------------------------------------
prep <- list(
  bcg = quote(dat.bcg),
  normand = quote(dat.normand1999),
  hackshaw = quote(dat.hackshaw1998),
  pritz = quote(dat.pritz1997),
  li2007 = quote(dat.li2007),
  raudenbush = quote(dat.raudenbush1985),
  konstantopoulos = quote(dat.konstantopoulos2011),
  bangertdrowns = quote(transform(dat.bangertdrowns2004, grade_f = as.character(grade))),
  molloy = quote(dat.molloy2014),
  hine = quote(dat.hine1989),
  yusuf12a = quote(subset(dat.yusuf1985, table == "12a" & !is.na(ai))),
  collins = quote(dat.collins1985b),
  linde = quote(subset(dat.linde2005, !is.na(ai) & !is.na(ci)))
)

specs <- list(
  bcg_rr = list(src = "bcg", es = quote(escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = src)),
                counts = c(ai = "tpos", bi = "tneg", ci = "cpos", di = "cneg"), mods = c("ablat", "year", "alloc")),
  bcg_or = list(src = "bcg", es = quote(escalc(measure = "OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = src)),
                counts = c(ai = "tpos", bi = "tneg", ci = "cpos", di = "cneg"), mods = c("ablat", "year", "alloc")),
  bcg_rd = list(src = "bcg", es = quote(escalc(measure = "RD", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = src)),
                counts = c(ai = "tpos", bi = "tneg", ci = "cpos", di = "cneg"), mods = c("ablat", "alloc")),
  normand_smd = list(src = "normand", es = quote(escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = src))),
  normand_md = list(src = "normand", es = quote(escalc(measure = "MD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = src))),
  hackshaw = list(src = "hackshaw", es = quote(escalc(measure = "GEN", yi = yi, vi = vi, data = src)),
                  mods = c("year", "design", "country")),
  pritz_plo = list(src = "pritz", es = quote(escalc(measure = "PLO", xi = xi, ni = ni, data = src))),
  li2007_or = list(src = "li2007", es = quote(escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = src)),
                   counts = c(ai = "ai", n1i = "n1i", ci = "ci", n2i = "n2i")),
  raudenbush = list(src = "raudenbush", es = quote(escalc(measure = "GEN", yi = yi, vi = vi, data = src)),
                    mods = c("weeks", "tester", "setting")),
  konstantopoulos = list(src = "konstantopoulos", es = quote(escalc(measure = "GEN", yi = yi, vi = vi, data = src)),
                         mods = c("year")),
  bangertdrowns = list(src = "bangertdrowns", es = quote(escalc(measure = "GEN", yi = yi, vi = vi, data = src)),
                       mods = c("grade_f", "imag", "ni")),
  molloy_zcor = list(src = "molloy", es = quote(escalc(measure = "ZCOR", ri = ri, ni = ni, data = src)),
                     mods = c("meanage", "quality", "design")),
  hine_rd = list(src = "hine", es = quote(escalc(measure = "RD", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = src)),
                 counts = c(ai = "ai", n1i = "n1i", ci = "ci", n2i = "n2i")),
  yusuf12a_or = list(src = "yusuf12a", es = quote(escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = src)),
                     counts = c(ai = "ai", n1i = "n1i", ci = "ci", n2i = "n2i")),
  collins_or = list(src = "collins", es = quote(escalc(measure = "OR", ai = pre.xti, n1i = pre.nti, ci = pre.xci, n2i = pre.nci, data = src)),
                    counts = c(ai = "pre.xti", n1i = "pre.nti", ci = "pre.xci", n2i = "pre.nci")),
  linde_rr = list(src = "linde", es = quote(escalc(measure = "RR", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = src)),
                  counts = c(ai = "ai", n1i = "n1i", ci = "ci", n2i = "n2i"))
)

data_env <- list()
datasets_json <- list()
for (name in names(specs)) {
  s <- specs[[name]]
  src_call <- prep[[s$src]]
  src <- eval(src_call)
  es_call <- do.call(substitute, list(s$es, list(src = src_call)))
  dat <- eval(es_call)
  k_all <- nrow(dat)
  dat <- dat[!is.na(dat$yi) & !is.na(dat$vi), ]
  rownames(dat) <- NULL
  entry <- list(call = call_text(es_call), then = "dat <- dat[!is.na(dat$yi) & !is.na(dat$vi), ]",
                k_dropped = k_all - nrow(dat), k = nrow(dat), yi = arr(dat$yi), vi = arr(dat$vi))
  if (!is.null(s$counts)) {
    cn <- s$counts
    cnt <- lapply(cn, function(col) dat[[col]])
    if (is.null(cnt$bi)) cnt$bi <- cnt$n1i - cnt$ai
    if (is.null(cnt$di)) cnt$di <- cnt$n2i - cnt$ci
    dat$ai <- cnt$ai; dat$bi <- cnt$bi; dat$ci <- cnt$ci; dat$di <- cnt$di
    entry$counts <- list(ai = arr(cnt$ai), bi = arr(cnt$bi), ci = arr(cnt$ci), di = arr(cnt$di))
    entry$counts_from <- as.list(cn)
  }
  if (!is.null(s$mods)) {
    entry$mods <- lapply(setNames(s$mods, s$mods), function(m) arr(dat[[m]]))
  }
  if (!is.null(attr(dat$yi, "ni"))) entry$ni <- arr(attr(dat$yi, "ni"))  # total n (regtest ni predictors)
  data_env[[name]] <- dat
  datasets_json[[name]] <- entry
}

env_for <- function(name) {
  e <- new.env(parent = globalenv())
  e$dat <- data_env[[name]]
  e
}

# ---------------------------------------------------------------------------------------------
# Summaries of fitted models
# ---------------------------------------------------------------------------------------------
is_fixed <- function(res) res$method %in% c("FE", "EE", "CE")

summ_rma <- function(res) {
  pr <- predict(res)
  out <- list(k = res$k, estimate = c(res$beta)[1], se = res$se[1], zval = res$zval[1], pval = res$pval[1],
              ci_low = res$ci.lb[1], ci_high = res$ci.ub[1], tau2 = res$tau2, tau2_se = nul(res$se.tau2),
              i2 = res$I2, h2 = res$H2, q = res$QE, q_df = res$k - res$p, q_p = res$QEp,
              df = if (res$test == "z") NULL else res$ddf, weights = arr(weights(res)))
  if (!is_fixed(res)) {
    out$pi_low <- pr$pi.lb
    out$pi_high <- pr$pi.ub
    if (res$k > 1) {
      ci <- confint(res)$random
      out$tau2_ci_low <- ci[1, 2]; out$tau2_ci_high <- ci[1, 3]
      out$i2_ci_low <- ci[3, 2]; out$i2_ci_high <- ci[3, 3]
      out$h2_ci_low <- ci[4, 2]; out$h2_ci_high <- ci[4, 3]
    }
  }
  out
}

summ_metareg <- function(res) {
  out <- list(k = res$k, p = res$p, names = arr(rownames(res$beta)), beta = arr(res$beta), se = arr(res$se),
              zval = arr(res$zval), pval = arr(res$pval), ci_low = arr(res$ci.lb), ci_high = arr(res$ci.ub),
              vcov = arr(res$vb), tau2 = res$tau2, tau2_se = nul(res$se.tau2), i2 = res$I2, h2 = res$H2,
              q = res$QE, q_df = res$k - res$p, q_p = res$QEp, qm = res$QM, qm_df = res$QMdf[1],
              qm_df2 = nul(res$QMdf[2]), qm_p = res$QMp, r2 = nul(res$R2),
              df = if (res$test == "z") NULL else res$ddf, weights = arr(weights(res)))
  if (!is_fixed(res)) {
    ci <- confint(res)$random
    out$tau2_ci_low <- ci[1, 2]; out$tau2_ci_high <- ci[1, 3]
  }
  out
}

records <- list()
add <- function(section, entry) {
  records[[section]] <<- c(records[[section]], list(entry))
}

# ---------------------------------------------------------------------------------------------
# rma: every tau^2 estimator x {z, knha}, plus FE
# ---------------------------------------------------------------------------------------------
methods <- c("DL", "REML", "ML", "PM", "SJ", "HE", "EB")
for (name in names(specs)) {
  e <- env_for(name)
  grid <- c(lapply(methods, function(m) c(m, "z")), lapply(methods, function(m) c(m, "knha")), list(c("FE", "z")),
            list(c("REML", "t"), c("DL", "adhoc"), c("PM", "knha", "90"), c("REML", "z", "99")))
  for (mt in grid) {
    cl <- if (length(mt) == 2L) bquote(rma(yi, vi, data = dat, method = .(mt[1]), test = .(mt[2])))
          else bquote(rma(yi, vi, data = dat, method = .(mt[1]), test = .(mt[2]), level = .(as.numeric(mt[3]))))
    res <- run(cl, e)
    add("rma", list(dataset = name, method = mt[1], test = mt[2], level = if (length(mt) == 2L) 95 else as.numeric(mt[3]),
                    call = call_text(cl),
                    confint_call = if (mt[1] != "FE") "confint(res)" else NULL,
                    predict_call = "predict(res)", result = summ_rma(res)))
  }
}

# ---------------------------------------------------------------------------------------------
# rma.mh (Mantel-Haenszel) on the binary data sets
# ---------------------------------------------------------------------------------------------
mh_grid <- list(c("bcg_rr", "OR"), c("bcg_rr", "RR"), c("bcg_rr", "RD"), c("li2007_or", "OR"), c("li2007_or", "RR"),
                c("li2007_or", "RD"), c("hine_rd", "OR"), c("hine_rd", "RR"), c("hine_rd", "RD"),
                c("yusuf12a_or", "OR"), c("collins_or", "OR"), c("linde_rr", "RR"), c("linde_rr", "OR"),
                c("linde_rr", "RD"))
for (g in mh_grid) {
  e <- env_for(g[1])
  cl <- bquote(rma.mh(ai = ai, bi = bi, ci = ci, di = di, data = dat, measure = .(g[2])))
  res <- suppressWarnings(run(cl, e))
  add("rma_mh", list(dataset = g[1], measure = g[2], call = call_text(cl), result = list(
    k = res$k, k_yi = res$k.yi, estimate = c(res$beta), se = res$se, zval = res$zval, pval = res$pval,
    ci_low = res$ci.lb, ci_high = res$ci.ub, q = res$QE, q_df = res$k.yi - 1, q_p = res$QEp, i2 = res$I2,
    h2 = res$H2, cmh = nul(res$MH), cmh_p = nul(res$MHp), bd = nul(res$BD), bd_p = nul(res$BDp),
    ta = nul(res$TA), ta_p = nul(res$TAp), k_pos = nul(res$k.pos), weights = arr(weights(res)),
    yi = arr(res$yi.f), vi = arr(res$vi.f))))
}

# ---------------------------------------------------------------------------------------------
# Subgroup analyses: separate tau^2 per subgroup + RevMan between test; common tau^2 (QM)
# ---------------------------------------------------------------------------------------------
sub_grid <- list(c("bcg_rr", "alloc", "DL", "z"), c("bcg_rr", "alloc", "REML", "knha"),
                 c("hackshaw", "country", "DL", "z"), c("hackshaw", "country", "REML", "knha"),
                 c("bangertdrowns", "grade_f", "DL", "z"), c("bangertdrowns", "grade_f", "PM", "knha"),
                 c("raudenbush", "tester", "REML", "z"), c("molloy_zcor", "design", "ML", "z"))
for (g in sub_grid) {
  e <- env_for(g[1])
  dat <- e$dat
  grp <- as.character(dat[[g[2]]])
  lev <- sort(unique(grp))
  rows <- list()
  est <- se <- numeric(0)
  cl_overall <- bquote(rma(yi, vi, data = dat, method = .(g[3]), test = .(g[4])))
  overall <- run(cl_overall, e)
  w_overall <- weights(overall)
  sub_calls <- character(0)
  for (L in lev) {
    cl <- bquote(rma(yi, vi, data = dat, subset = .(as.name(g[2])) == .(L), method = .(g[3]), test = .(g[4])))
    sub_calls <- c(sub_calls, call_text(cl))
    res <- suppressWarnings(run(cl, e))
    est <- c(est, c(res$beta)); se <- c(se, res$se)
    rows[[length(rows) + 1L]] <- list(level = L, k = res$k, weight_pct = sum(w_overall[grp == L]),
      estimate = c(res$beta), se = res$se, ci_low = res$ci.lb, ci_high = res$ci.ub, pval = res$pval,
      tau2 = res$tau2, i2 = res$I2, q = res$QE, q_df = res$k - 1, q_p = res$QEp)
  }
  e$est <- est; e$se <- se
  cl_between <- quote(rma(yi = est, sei = se, method = "FE"))
  between <- run(cl_between, e)
  f <- as.name(g[2])
  cl_qm <- bquote(rma(yi, vi, mods = ~ .(f), data = dat, method = .(g[3]), test = .(g[4])))
  cl_cell <- bquote(rma(yi, vi, mods = ~ .(f) - 1, data = dat, method = .(g[3]), test = .(g[4])))
  qm <- run(cl_qm, e)
  cell <- run(cl_cell, e)
  add("subgroups", list(dataset = g[1], group = g[2], method = g[3], test = g[4], levels = arr(lev),
    calls = list(subgroups = arr(sub_calls), between = call_text(cl_between), overall = call_text(cl_overall),
                 common_qm = call_text(cl_qm), common_cells = call_text(cl_cell)),
    separate = list(subgroups = rows, between = list(q = between$QE, df = between$k - 1, p = between$QEp,
                                                     i2 = between$I2),
                    overall = list(estimate = c(overall$beta), tau2 = overall$tau2, weights = arr(w_overall))),
    common = list(qm = qm$QM, qm_df = qm$QMdf[1], qm_df2 = nul(qm$QMdf[2]), qm_p = qm$QMp, tau2 = qm$tau2,
                  i2 = qm$I2, estimate = arr(cell$beta), se = arr(cell$se), ci_low = arr(cell$ci.lb),
                  ci_high = arr(cell$ci.ub), pval = arr(cell$pval))))
}

# ---------------------------------------------------------------------------------------------
# Meta-regression: continuous and categorical moderators
# ---------------------------------------------------------------------------------------------
mr_grid <- list(
  list("bcg_rr", quote(~ ablat), c("ablat"), "REML", "z"),
  list("bcg_rr", quote(~ ablat + year), c("ablat", "year"), "REML", "knha"),
  list("bcg_rr", quote(~ alloc), c("alloc"), "DL", "z"),
  list("bcg_rr", quote(~ ablat + alloc), c("ablat", "alloc"), "FE", "z"),
  list("bcg_or", quote(~ ablat + alloc), c("ablat", "alloc"), "PM", "knha"),
  list("bcg_rd", quote(~ ablat), c("ablat"), "ML", "z"),
  list("raudenbush", quote(~ weeks), c("weeks"), "REML", "z"),
  list("raudenbush", quote(~ weeks + tester), c("weeks", "tester"), "EB", "knha"),
  list("bangertdrowns", quote(~ grade_f + imag), c("grade_f", "imag"), "REML", "z"),
  list("bangertdrowns", quote(~ ni + imag), c("ni", "imag"), "SJ", "z"),
  list("molloy_zcor", quote(~ meanage + quality), c("meanage", "quality"), "REML", "knha"),
  list("molloy_zcor", quote(~ design), c("design"), "HE", "z"),
  list("hackshaw", quote(~ design + year), c("design", "year"), "DL", "knha"),
  list("konstantopoulos", quote(~ year), c("year"), "REML", "z"),
  # no intercept: metafor 3.8 estimates tau^2 and QE from the *centred* yi even then
  list("bcg_rr", quote(~ ablat - 1), c("ablat"), "REML", "z", FALSE),
  list("raudenbush", quote(~ tester - 1), c("tester"), "DL", "knha", FALSE)
)
for (g in mr_grid) {
  e <- env_for(g[[1]])
  cl <- bquote(rma(yi, vi, mods = .(g[[2]]), data = dat, method = .(g[[4]]), test = .(g[[5]])))
  res <- run(cl, e)
  add("metareg", list(dataset = g[[1]], moderators = arr(g[[3]]), method = g[[4]], test = g[[5]],
                      intercept = length(g) < 6L || g[[6]], call = call_text(cl), result = summ_metareg(res)))
}

# ---------------------------------------------------------------------------------------------
# leave1out
# ---------------------------------------------------------------------------------------------
l1o_grid <- list(c("bcg_rr", "REML", "z"), c("hackshaw", "DL", "knha"), c("normand_smd", "PM", "z"),
                 c("raudenbush", "FE", "z"), c("molloy_zcor", "EB", "knha"))
for (g in l1o_grid) {
  e <- env_for(g[1])
  cl <- bquote(rma(yi, vi, data = dat, method = .(g[2]), test = .(g[3])))
  res <- run(cl, e)
  l1 <- leave1out(res)
  stat <- if (g[3] == "z") l1$zval else l1$tval
  add("leave1out", list(dataset = g[1], method = g[2], test = g[3], call = call_text(cl), l1o_call = "leave1out(res)",
    result = list(estimate = arr(l1$estimate), se = arr(l1$se), zval = arr(stat), pval = arr(l1$pval),
                  ci_low = arr(l1$ci.lb), ci_high = arr(l1$ci.ub), q = arr(l1$Q), q_p = arr(l1$Qp),
                  tau2 = if (is.null(l1$tau2)) NULL else arr(l1$tau2), i2 = arr(l1$I2), h2 = arr(l1$H2))))
}

# ---------------------------------------------------------------------------------------------
# regtest (Egger)
# ---------------------------------------------------------------------------------------------
reg_grid <- list(
  list("hackshaw", "REML", "z", list()), list("hackshaw", "REML", "z", list(model = "lm")),
  list("bcg_rr", "REML", "z", list()), list("bcg_rr", "DL", "knha", list()),
  list("bcg_rr", "FE", "z", list(predictor = "vi")), list("bangertdrowns", "REML", "z", list()),
  list("bangertdrowns", "REML", "z", list(model = "lm")), list("molloy_zcor", "PM", "z", list()),
  list("molloy_zcor", "REML", "z", list(model = "lm", predictor = "vi")),
  list("raudenbush", "ML", "z", list()),
  # sample-size predictors for SMDs (Egger's test free of the g-SE correlation; Pustejovsky & Rodgers 2019)
  list("normand_smd", "DL", "z", list(predictor = "sqrtninv")),
  list("normand_smd", "REML", "z", list(predictor = "ninv")),
  list("normand_smd", "REML", "z", list(model = "lm", predictor = "sqrtninv"))
)
for (g in reg_grid) {
  e <- env_for(g[[1]])
  cl <- bquote(rma(yi, vi, data = dat, method = .(g[[2]]), test = .(g[[3]])))
  e$res <- run(cl, e)
  rcl <- as.call(c(list(as.name("regtest"), as.name("res")), g[[4]]))
  rt <- run(rcl, e)
  if (rt$model == "rma") {
    slope <- c(rt$fit$beta)[2]; slope_se <- rt$fit$se[2]
  } else {
    slope <- coef(summary(rt$fit))[2, 1]; slope_se <- coef(summary(rt$fit))[2, 2]
  }
  add("regtest", list(dataset = g[[1]], method = g[[2]], test = g[[3]], model = rt$model, predictor = rt$predictor,
    call = call_text(cl), regtest_call = call_text(rcl),
    result = list(zval = rt$zval, pval = rt$pval, df = nul(rt$ddf), limit_estimate = nul(rt$est),
                  limit_ci_low = nul(rt$ci.lb), limit_ci_high = nul(rt$ci.ub), slope = slope, slope_se = slope_se)))
}

# ---------------------------------------------------------------------------------------------
# trimfill
# ---------------------------------------------------------------------------------------------
tf_grid <- list(
  list("hackshaw", "REML", list()), list("hackshaw", "FE", list(estimator = "R0")),
  list("bangertdrowns", "REML", list()), list("bangertdrowns", "DL", list(estimator = "R0")),
  list("molloy_zcor", "REML", list()), list("raudenbush", "FE", list()),
  list("bcg_rr", "REML", list(side = "right")), list("bcg_rr", "PM", list(side = "left", estimator = "R0")),
  list("li2007_or", "DL", list())
)
for (g in tf_grid) {
  e <- env_for(g[[1]])
  cl <- bquote(rma(yi, vi, data = dat, method = .(g[[2]])))
  e$res <- run(cl, e)
  tcl <- as.call(c(list(as.name("trimfill"), as.name("res")), g[[3]]))
  tf <- run(tcl, e)
  add("trimfill", list(dataset = g[[1]], method = g[[2]], call = call_text(cl), trimfill_call = call_text(tcl),
    options = g[[3]],
    result = list(k0 = tf$k0, k0_se = tf$se.k0, k0_p = nul(tf$p.k0), side = tf$side, estimator = tf$k0.est,
                  filled_yi = arr(tf$yi[tf$fill]), filled_vi = arr(tf$vi[tf$fill]), model = summ_rma(tf))))
}

# ---------------------------------------------------------------------------------------------
# funnel plot coordinates (points and the critical values of the pseudo-CI/contour lines)
# ---------------------------------------------------------------------------------------------
fn_grid <- list(c("hackshaw", "REML"), c("bcg_rr", "DL"), c("molloy_zcor", "FE"))
for (g in fn_grid) {
  e <- env_for(g[1])
  cl <- bquote(rma(yi, vi, data = dat, method = .(g[2])))
  e$res <- run(cl, e)
  grDevices::pdf(NULL)
  fcl <- quote(funnel(res))
  fd <- run(fcl, e)
  ccl <- quote(funnel(res, level = c(90, 95, 99), refline = 0))
  cd <- run(ccl, e)
  grDevices::dev.off()
  add("funnel", list(dataset = g[1], method = g[2], call = call_text(cl), funnel_call = call_text(fcl),
    contour_call = call_text(ccl),
    result = list(x = arr(fd$x), y = arr(fd$y), refline = c(e$res$beta), max_sei = max(sqrt(e$res$vi)),
                  z_level = qnorm(0.025, lower.tail = FALSE),
                  z_contours = arr(qnorm(c(0.10, 0.05, 0.01) / 2, lower.tail = FALSE)),
                  contour_x = arr(cd$x), contour_y = arr(cd$y))))
}

# ---------------------------------------------------------------------------------------------
# uniroot iterates (the root finder behind PM and the Q-profile CI)
# ---------------------------------------------------------------------------------------------
ur_grid <- list(
  list(name = "cubic", f = quote(function(x) x^3 - 2), lower = 0, upper = 5, tol = NULL),
  list(name = "cos", f = quote(function(x) cos(x) - x), lower = 0, upper = 1, tol = NULL),
  list(name = "exp", f = quote(function(x) exp(x) - 10), lower = -1, upper = 5, tol = 1e-10),
  list(name = "step", f = quote(function(x) atan(50 * (x - 0.3))), lower = -2, upper = 7, tol = NULL)
)
for (g in ur_grid) {
  ucl <- if (is.null(g$tol)) bquote(uniroot(.(g$f), lower = .(g$lower), upper = .(g$upper)))
         else bquote(uniroot(.(g$f), lower = .(g$lower), upper = .(g$upper), tol = .(g$tol)))
  u <- eval(ucl)
  add("uniroot", list(name = g$name, call = call_text(ucl), lower = g$lower, upper = g$upper,
                      tol = if (is.null(g$tol)) .Machine$double.eps^0.25 else g$tol, root = u$root, iter = u$iter))
}

result <- c(list(
  generator = "tests/reference/make_rma.R",
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  r_version = R.version.string,
  sources = lapply(prep, call_text),
  datasets = datasets_json), records)

writeLines(to_json(result), out_path, useBytes = TRUE)
cat("wrote", out_path, "\n")
