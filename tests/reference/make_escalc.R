# Pinned metafor::escalc() reference values for tests/test_effects.py.
#
# Usage (from the repository root):
#     Rscript tests/reference/make_escalc.R tests/reference/escalc.json
#
# For every case the script records
#   - `prepare`: the exact R expression that turns a metadat data set into a data
#     frame `d` written in bayesmeta's vocabulary (study, ai, bi, ci, di / n1i, n2i,
#     m1i, sd1i, ..., yi, vi, sei),
#   - `call`:    the exact escalc() call evaluated on `d`,
#   - `data`:    the columns of `d` (so the Python test needs no R),
#   - `yi`, `vi`: metafor's results (null where metafor returns NA).
# Both expressions are stored as strings and evaluated with eval(parse()), so the
# recorded text is exactly what ran. No randomness is involved: the output is
# deterministic for a given metafor/metadat version, which is recorded too.
#
# Base R only (no jsonlite): a tiny JSON writer below prints doubles with 17
# significant digits, so the JSON round-trips every double exactly.

suppressPackageStartupMessages(library(metafor))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript tests/reference/make_escalc.R OUT.json")
out_path <- args[[1L]]
# JSON writer shared with the other reference scripts (tests/reference/json_writer.R).
script_dir <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))))
source(file.path(script_dir, "json_writer.R"))

# ---------------------------------------------------------------- cases
cases <- list()

add_case <- function(id, dataset, prepare, call, measure, cc = NULL, vtype = "LS") {
   env <- new.env(parent = globalenv())
   eval(parse(text = prepare), envir = env)
   res <- eval(parse(text = call), envir = env)
   d <- get("d", envir = env)
   if (is.null(cc)) cc <- list(add = 0.5, to = "only0", drop00 = FALSE)
   cases[[length(cases) + 1L]] <<- list(
      id = json_scalar(id),
      dataset = json_scalar(dataset),
      prepare = json_scalar(prepare),
      call = json_scalar(call),
      measure = json_scalar(measure),
      cc = list(add = json_scalar(cc$add), to = json_scalar(cc$to), drop00 = json_scalar(cc$drop00)),
      vtype = json_scalar(vtype),
      data = as.list(d),
      yi = as.numeric(res$yi),
      vi = as.numeric(res$vi)
   )
}

# Binary outcomes: BCG vaccine trials (no zero cells), every ratio/difference measure.
prep_bcg <- "d <- with(dat.bcg, data.frame(study = paste(author, year), ai = tpos, bi = tneg, ci = cpos, di = cneg))"
for (m in c("RR", "OR", "RD"))
   add_case(paste0("bcg_", m), "dat.bcg", prep_bcg,
            sprintf("escalc(measure = \"%s\", ai = ai, bi = bi, ci = ci, di = di, data = d)", m), m)

# Constructed zero-cell version of dat.bcg: a single zero in each arm, no events in
# both arms, all events in both arms, and a zero non-event cell.
prep_bcg0 <- paste(prep_bcg,
   "d$ai[1] <- 0; d$ci[2] <- 0; d$ai[3] <- 0; d$ci[3] <- 0",
   "d$bi[4] <- 0; d$di[4] <- 0; d$bi[5] <- 0", sep = "; ")
cc_policies <- list(
   default = list(args = "", cc = list(add = 0.5, to = "only0", drop00 = FALSE)),
   drop00 = list(args = ", drop00 = TRUE", cc = list(add = 0.5, to = "only0", drop00 = TRUE)),
   all = list(args = ", to = \"all\"", cc = list(add = 0.5, to = "all", drop00 = FALSE)),
   if0all = list(args = ", to = \"if0all\"", cc = list(add = 0.5, to = "if0all", drop00 = FALSE)),
   add025 = list(args = ", add = 0.25", cc = list(add = 0.25, to = "only0", drop00 = FALSE)),
   none = list(args = ", add = 0, to = \"none\"", cc = list(add = 0, to = "none", drop00 = FALSE))
)
for (m in c("RR", "OR", "RD")) for (p in names(cc_policies))
   add_case(paste0("bcg_zero_", m, "_", p), "dat.bcg (zero cells constructed)", prep_bcg0,
            sprintf("escalc(measure = \"%s\", ai = ai, bi = bi, ci = ci, di = di, data = d%s)", m, cc_policies[[p]]$args),
            m, cc_policies[[p]]$cc)

# Zero cells in real data, counts given as events and totals (ai, n1i, ci, n2i).
prep_niel <- "d <- with(dat.nielweise2007, data.frame(study = paste(author, year), ai = ai, n1i = n1i, ci = ci, n2i = n2i))"
prep_anand <- "d <- with(dat.anand1999, data.frame(study = paste(study, year), ai = ai, n1i = n1i, ci = ci, n2i = n2i, intensity = intensity))"
for (m in c("RR", "OR", "RD")) {
   add_case(paste0("nielweise2007_", m), "dat.nielweise2007", prep_niel,
            sprintf("escalc(measure = \"%s\", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = d)", m), m)
   add_case(paste0("nielweise2007_", m, "_drop00"), "dat.nielweise2007", prep_niel,
            sprintf("escalc(measure = \"%s\", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = d, drop00 = TRUE)", m),
            m, cc_policies$drop00$cc)
   add_case(paste0("anand1999_", m), "dat.anand1999", prep_anand,
            sprintf("escalc(measure = \"%s\", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = d)", m), m)
}

# Rows with all outcome values missing and repeated study names (dat.yusuf1985).
prep_yusuf <- "d <- with(dat.yusuf1985, data.frame(study = trial, ai = ai, n1i = n1i, ci = ci, n2i = n2i, table = table))"
for (m in c("OR", "RR"))
   add_case(paste0("yusuf1985_", m), "dat.yusuf1985", prep_yusuf,
            sprintf("escalc(measure = \"%s\", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = d)", m), m)

prep_hine <- "d <- with(dat.hine1989, data.frame(study = source, ai = ai, n1i = n1i, ci = ci, n2i = n2i))"
add_case("hine1989_RD", "dat.hine1989", prep_hine,
         "escalc(measure = \"RD\", ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = d)", "RD")

# Continuous outcomes.
prep_normand <- "d <- with(dat.normand1999, data.frame(study = source, m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i))"
prep_curtis <- "d <- with(dat.curtis1998, data.frame(study = paste(genus, species), m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, fungrp = fungrp))"
prep_gibson <- "d <- with(dat.gibson2002, data.frame(study = paste(author, year), m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i))"
for (m in c("SMD", "MD")) {
   cont_call <- sprintf("escalc(measure = \"%s\", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i, data = d)", m)
   add_case(paste0("normand1999_", m), "dat.normand1999", prep_normand, cont_call, m)
   add_case(paste0("curtis1998_", m), "dat.curtis1998", prep_curtis, cont_call, m)
   add_case(paste0("gibson2002_", m), "dat.gibson2002", prep_gibson, cont_call, m)
}

# Ready effect sizes: yi with vi, and yi with sei.
add_case("hackshaw1998_GEN_vi", "dat.hackshaw1998",
         "d <- with(dat.hackshaw1998, data.frame(study = paste(author, year), yi = yi, vi = vi, design = design))",
         "escalc(measure = \"GEN\", yi = yi, vi = vi, data = d)", "GEN")
add_case("lopez2019_GEN_sei", "dat.lopez2019",
         "d <- with(dat.lopez2019, data.frame(study = paste(study, treatment), yi = diff, sei = se, group = group))",
         "escalc(measure = \"GEN\", yi = yi, sei = sei, data = d)", "GEN")

# Median/quartile/range -> mean/SD conversions: metafor >= 4.2 has conv.fivenum();
# metafor 3.8-1 (installed here) does not, so these cases are written only when it
# exists. bayesmeta's defaults are Luo et al. (2018) means and Wan et al. (2014)
# SDs, i.e. conv.fivenum(method = c("luo2016", "wan2014"), test = FALSE).
has_fivenum <- exists("conv.fivenum", envir = asNamespace("metafor"))
fivenum_cases <- list()
if (has_fivenum) {
   prepare <- paste(
      "d <- data.frame(study = c('A', 'B', 'C', 'D'), n = c(25, 60, 13, 200),",
      "min = c(1, NA, 2, 0.5), q1 = c(NA, 10, 4, 3), median = c(4, 14, 5, 4.2),",
      "q3 = c(NA, 19, 7, 6), max = c(11, NA, 12, 15))")
   call <- paste("conv.fivenum(min = min, q1 = q1, median = median, q3 = q3, max = max, n = n,",
                 "data = d, method = c(\"luo2016\", \"wan2014\"), test = FALSE)")
   env <- new.env(parent = globalenv())
   eval(parse(text = prepare), envir = env)
   res <- eval(parse(text = call), envir = env)
   fivenum_cases[[1L]] <- list(prepare = json_scalar(prepare), call = json_scalar(call),
                               data = as.list(get("d", envir = env)),
                               mean = as.numeric(res$mean), sd = as.numeric(res$sd))
}

out <- list(
   generator = json_scalar("tests/reference/make_escalc.R"),
   metafor_version = json_scalar(as.character(packageVersion("metafor"))),
   metadat_version = json_scalar(as.character(packageVersion("metadat"))),
   r_version = json_scalar(R.version.string),
   has_conv_fivenum = json_scalar(has_fivenum),
   cases = cases,
   conv_fivenum = fivenum_cases
)

con <- file(out_path, open = "w", encoding = "UTF-8")
writeLines(to_json(out), con)
close(con)
cat(sprintf("wrote %d cases to %s\n", length(cases), out_path))
