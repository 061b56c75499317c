# Pins metafor's random-effects fits of the BCG trials (dat.bcg, log risk ratios) for
# tests/test_comparison.py: the frequentist column of the comparison table, and metafor's own
# back-transformed (exp) estimate, CI and prediction interval to check the printed scale.
#
# Usage (from the repository root):  Rscript tests/reference/make_comparison.R tests/reference/comparison.json
#
# Deterministic: no random numbers. Base R only (JSON written by the small writer below).

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript tests/reference/make_comparison.R OUT.json")
out_path <- args[1]

suppressPackageStartupMessages({
  library(metafor)
  library(metadat)
})

json_num <- function(x) ifelse(is.finite(x), sprintf("%.17g", x), "null")
json_str <- function(s) paste0("\"", gsub("\"", "\\\"", s, fixed = TRUE), "\"")
to_json <- function(x, indent = "") {
  inner <- paste0(indent, "  ")
  if (is.list(x)) {
    keys <- vapply(names(x), json_str, "")
    items <- vapply(x, to_json, "", indent = inner)
    return(paste0("{\n", inner, paste(paste0(keys, ": ", items), collapse = paste0(",\n", inner)), "\n", indent, "}"))
  }
  if (is.character(x)) return(json_str(x))
  json_num(as.numeric(x))
}

dat_call <- quote(escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg))
dat <- eval(dat_call)

fit_case <- function(method) {
  cl <- bquote(rma(yi, vi, data = dat, method = .(method)))
  fit <- eval(cl)
  pred <- predict(fit)
  pexp <- predict(fit, transf = exp)
  list(
    call = paste(deparse(cl), collapse = " "),
    k = fit$k,
    estimate = as.numeric(fit$beta),
    se = fit$se,
    ci_low = fit$ci.lb,
    ci_high = fit$ci.ub,
    pi_low = pred$pi.lb,
    pi_high = pred$pi.ub,
    tau2 = fit$tau2,
    i2 = fit$I2,
    level = 95,
    exp_estimate = as.numeric(pexp$pred),
    exp_ci_low = pexp$ci.lb,
    exp_ci_high = pexp$ci.ub,
    exp_pi_low = pexp$pi.lb,
    exp_pi_high = pexp$pi.ub
  )
}

out <- list(
  generator = "tests/reference/make_comparison.R",
  metafor_version = as.character(packageVersion("metafor")),
  metadat_version = as.character(packageVersion("metadat")),
  r_version = R.version.string,
  data_call = paste(deparse(dat_call), collapse = " "),
  bcg_dl = fit_case("DL"),
  bcg_reml = fit_case("REML")
)
writeLines(to_json(out), out_path)
