# Pinned metafor::rma() heterogeneity summaries for tests/test_builders.py.
#
# Usage (from the repository root):
#     Rscript tests/reference/make_builders.R tests/reference/builders.json
#
# The builders compute I² (percent) from tau² and the typical within-study variance
# s² = (k - p) / tr(P), P = W - W X (X'W X)^-1 X'W (Higgins & Thompson 2002 for p = 1; the
# generalisation metafor uses with moderators). For each case the script records the exact
# R call (evaluated with eval(parse())), metafor's tau2, I2 and model matrix X, and the data (BCG trials,
# log risk ratios, with the moderators ablat and alloc), so the Python tests need no R.
# Deterministic: no randomness; metafor/metadat/R versions are recorded.
suppressPackageStartupMessages(library(metafor))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1L) stop("usage: Rscript tests/reference/make_builders.R OUT.json")
out_path <- args[[1L]]
# JSON writer shared with the other reference scripts (tests/reference/json_writer.R).
script_dir <- dirname(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))))
source(file.path(script_dir, "json_writer.R"))

d <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
d$label <- paste(d$author, d$year)

cases <- list()
add_case <- function(id, call, subset = NULL) {
   res <- eval(parse(text = call))
   cases[[length(cases) + 1L]] <<- list(
      id = json_scalar(id),
      call = json_scalar(call),
      subset = if (is.null(subset)) NULL else json_scalar(subset),
      k = json_scalar(res$k),
      p = json_scalar(res$p),
      tau2 = json_scalar(res$tau2),
      I2 = json_scalar(res$I2),
      X_colnames = colnames(res$X),
      X = lapply(seq_len(ncol(res$X)), function(j) as.numeric(res$X[, j]))
   )
}

add_case("intercept", "rma(yi, vi, data = d, method = \"REML\")")
add_case("ablat", "rma(yi, vi, mods = ~ ablat, data = d, method = \"REML\")")
add_case("alloc", "rma(yi, vi, mods = ~ factor(alloc), data = d, method = \"REML\")")
add_case("alloc_ablat", "rma(yi, vi, mods = ~ factor(alloc) + ablat, data = d, method = \"REML\")")
for (lev in sort(unique(d$alloc)))
   add_case(paste0("subset_", lev),
            sprintf("rma(yi, vi, data = d, subset = alloc == \"%s\", method = \"REML\")", lev), lev)

out <- list(
   generator = json_scalar("tests/reference/make_builders.R"),
   metafor_version = json_scalar(as.character(packageVersion("metafor"))),
   metadat_version = json_scalar(as.character(packageVersion("metadat"))),
   r_version = json_scalar(R.version.string),
   data = list(label = d$label, yi = as.numeric(d$yi), vi = as.numeric(d$vi),
               ablat = as.numeric(d$ablat), alloc = as.character(d$alloc)),
   cases = cases
)

con <- file(out_path, open = "w", encoding = "UTF-8")
writeLines(to_json(out), con)
close(con)
cat(sprintf("wrote %d cases to %s\n", length(cases), out_path))
