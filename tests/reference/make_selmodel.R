# Pinned metafor::selmodel(type = "stepfun") reference values for tests/test_selection_ml.py.
#
# Usage (from the repository root):
#     Rscript tests/reference/make_selmodel.R tests/reference/selmodel.json
#
# Needs metafor, metadat and numDeriv (metafor computes the Hessian with numDeriv;
# Debian: r-cran-numderiv).
#
# For every case the script records
#   - `prepare`: the exact R expression that builds a data frame `d` with columns yi, vi,
#   - `call`:    the exact selmodel() call evaluated on `d` (both stored as text and run with
#                eval(parse()), so the recorded text is exactly what ran),
#   - `yi`, `vi`: the data (the Python test needs no R),
#   - metafor's results: estimate (beta), se, tau2, se_tau2, weights (delta, the first fixed
#     at 1), se_weights (se.delta, NA for the fixed one), ll, ll0, LRT, LRTdf, LRTp, and the
#     number of p-values per interval.
#
# Two kinds of call per data set:
#   - "tight": control = list(reltol = 1e-15, ndeps = rep(1e-6, npar), maxit = 10000). metafor
#     optimises with optim(BFGS) on finite-difference gradients and stops on the relative change
#     of the log-likelihood (default reltol 1e-8, ndeps 1e-3), which leaves the optimum ~1e-5
#     (relative) away from the stationary point; tightened, it lands within ~2e-7. The Python
#     tests compare with these at 1e-6.
#   - "default": metafor's defaults, what a user sees; compared at the looser tolerance above.
#
# No randomness: the output is deterministic for a given metafor/metadat/numDeriv version,
# which is recorded. Base R only: doubles are printed with 17 significant digits.

suppressPackageStartupMessages(library(metafor))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript tests/reference/make_selmodel.R OUT.json")
out_path <- args[[1L]]

# ---------------------------------------------------------------- JSON writer
json_num <- function(v) {
   v <- as.numeric(v)
   ifelse(is.na(v) | !is.finite(v), "null", sprintf("%.17g", v))
}
json_str <- function(s) {
   s <- gsub("\\", "\\\\", enc2utf8(as.character(s)), fixed = TRUE)
   s <- gsub("\"", "\\\"", s, fixed = TRUE)
   paste0("\"", s, "\"")
}
# scalars are wrapped with I() to stay scalars; everything else numeric/character is an array
to_json <- function(x, indent = "") {
   inner <- paste0(indent, "  ")
   if (is.list(x)) {
      body <- vapply(names(x), function(n) paste0(inner, json_str(n), ": ", to_json(x[[n]], inner)), "")
      return(paste0("{\n", paste(body, collapse = ",\n"), "\n", indent, "}"))
   }
   atoms <- if (is.character(x)) json_str(x) else if (is.logical(x)) ifelse(is.na(x), "null", tolower(as.character(x))) else json_num(x)
   if (inherits(x, "AsIs")) return(atoms[[1L]])
   paste0("[", paste(atoms, collapse = ", "), "]")
}

# ---------------------------------------------------------------- cases
datasets <- list(
   hackshaw1998 = "d <- dat.hackshaw1998[, c('yi', 'vi')]",
   baskerville2012 = "d <- data.frame(yi = dat.baskerville2012$smd, vi = dat.baskerville2012$se^2)",
   bangertdrowns2004 = "d <- dat.bangertdrowns2004[, c('yi', 'vi')]",
   bcg = "d <- escalc(measure = 'RR', ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)[, c('yi', 'vi')]"
)

# name, data set, rma method, selmodel arguments (as R text), number of optim parameters
# (beta, tau2 and every delta including the fixed first one)
cases <- list(
   list("hackshaw_025_05", "hackshaw1998", "ML", "steps = c(0.025, 0.5)", 5),
   list("baskerville_3psm", "baskerville2012", "ML", "steps = 0.025", 4),
   list("bangertdrowns_025_05_5", "bangertdrowns2004", "ML", "steps = c(0.025, 0.05, 0.5)", 6),
   list("bangertdrowns_twosided_05", "bangertdrowns2004", "ML", "steps = 0.05, alternative = 'two.sided'", 4),
   list("bangertdrowns_twosided_05_10", "bangertdrowns2004", "ML", "steps = c(0.05, 0.10), alternative = 'two.sided'", 5),
   list("bcg_less_025", "bcg", "ML", "steps = 0.025, alternative = 'less'", 4),
   list("hackshaw_ee_025", "hackshaw1998", "EE", "steps = 0.025", 4)
)

controls <- list(
   tight = function(npar) sprintf("control = list(reltol = 1e-15, ndeps = rep(1e-6, %d), maxit = 10000)", npar),
   default = function(npar) NULL
)

results <- list()
for (case in cases) {
   name <- case[[1L]]; ds <- case[[2L]]; method <- case[[3L]]; selargs <- case[[4L]]; npar <- case[[5L]]
   prepare <- datasets[[ds]]
   eval(parse(text = prepare))
   for (ctl in names(controls)) {
      ctrl <- controls[[ctl]](npar)
      call <- sprintf("selmodel(rma(yi, vi, data = d, method = '%s'), type = 'stepfun', %s%s)",
                      method, selargs, if (is.null(ctrl)) "" else paste0(", ", ctrl))
      sel <- eval(parse(text = call))
      alt <- sel$alternative
      results[[paste0(name, "__", ctl)]] <- list(
         dataset = I(ds), prepare = I(prepare), call = I(call), control = I(ctl),
         method = I(method), alternative = I(alt), steps = sel$steps,
         yi = as.numeric(d$yi), vi = as.numeric(d$vi),
         estimate = I(c(sel$beta)[1L]), se = I(sel$se[1L]), tau2 = I(sel$tau2),
         se_tau2 = I(sel$se.tau2), weights = sel$delta, se_weights = sel$se.delta,
         ll = I(sel$ll), ll0 = I(sel$ll0), lrt = I(sel$LRT), lrt_df = I(sel$LRTdf),
         lrt_p = I(sel$LRTp), n_in_interval = as.numeric(sel$ptable$k)
      )
   }
}

out <- list(
   generated_by = I("tests/reference/make_selmodel.R"),
   r_version = I(R.version.string),
   metafor_version = I(as.character(packageVersion("metafor"))),
   metadat_version = I(as.character(packageVersion("metadat"))),
   numDeriv_version = I(as.character(packageVersion("numDeriv"))),
   cases = results
)
writeLines(to_json(out), out_path)
