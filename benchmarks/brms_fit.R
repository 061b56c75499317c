# brms side of the fit-speed benchmark (see benchmarks/README.md, "Fit speed: bayesmeta vs brms").
#
# Usage: Rscript benchmarks/brms_fit.R DATA.csv OUT.json [SEED] [CHAINS] [ITER] [WARMUP]
#
# DATA.csv has columns study, yi, sei. Fits the normal-normal random-effects model
#   yi | se(sei) ~ 1 + (1 | study),  Intercept ~ N(0, 10),  sd ~ half-N(0, 0.5)
# twice: brm() (Stan code generation + C++ compilation + sampling: brms's cold path) and
# update(recompile = FALSE) on the same data (sampling only: brms's warm path).
# Writes timings (seconds), rstan's per-chain warmup/sampling times, posterior summaries of
# b_Intercept and sd_study__Intercept, and their draws per chain (so that ESS is computed with
# the same estimator, arviz_stats, on both sides).

t_script <- proc.time()[["elapsed"]]
args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 2) stop("usage: Rscript brms_fit.R DATA.csv OUT.json [SEED] [CHAINS] [ITER] [WARMUP]")
data_path <- args[[1]]
out_path <- args[[2]]
seed <- if (length(args) >= 3) as.integer(args[[3]]) else 2018L
chains <- if (length(args) >= 4) as.integer(args[[4]]) else 4L
iter <- if (length(args) >= 5) as.integer(args[[5]]) else 2000L
warmup <- if (length(args) >= 6) as.integer(args[[6]]) else 1000L

elapsed <- function() proc.time()[["elapsed"]]
# CPU seconds of this process and its finished children (the C++ compiler runs as a child)
cpu <- function() {
  p <- proc.time()
  sum(p[c("user.self", "sys.self", "user.child", "sys.child")], na.rm = TRUE)
}

t0 <- elapsed(); c0 <- cpu()
suppressPackageStartupMessages(library(brms))
t_library <- elapsed() - t0; c_library <- cpu() - c0

dat <- read.csv(data_path, stringsAsFactors = FALSE)
stopifnot(all(c("study", "yi", "sei") %in% names(dat)))

priors <- c(prior(normal(0, 10), class = Intercept),
            prior(normal(0, 0.5), class = sd))

# cold: generate Stan code, compile it, sample
t0 <- elapsed(); c0 <- cpu()
fit1 <- brm(yi | se(sei) ~ 1 + (1 | study), data = dat, prior = priors,
            chains = chains, iter = iter, warmup = warmup, seed = seed, cores = 1,
            refresh = 0, silent = 2)
t_brm <- elapsed() - t0; c_brm <- cpu() - c0

# warm: the compiled model is reused (no C++ compilation), sampling again on the same data
t0 <- elapsed(); c0 <- cpu()
fit2 <- update(fit1, newdata = dat, recompile = FALSE, seed = seed, refresh = 0, silent = 2)
t_update <- elapsed() - t0; c_update <- cpu() - c0

stan_times <- function(fit) {
  e <- rstan::get_elapsed_time(fit$fit)
  list(warmup = unname(e[, "warmup"]), sample = unname(e[, "sample"]),
       total = sum(e))
}

pars <- c(mu = "b_Intercept", tau = "sd_study__Intercept")

summarise <- function(fit) {
  d <- posterior::as_draws_array(fit, variable = unname(pars))
  out <- list()
  for (name in names(pars)) {
    x <- as.vector(d[, , pars[[name]]])
    q <- unname(quantile(x, c(0.5, 0.025, 0.975)))
    out[[name]] <- list(median = q[1], mean = mean(x), sd = sd(x), q025 = q[2], q975 = q[3])
  }
  out
}

draws_by_chain <- function(fit) {
  d <- posterior::as_draws_array(fit, variable = unname(pars))
  out <- list()
  for (name in names(pars)) {
    m <- unclass(d[, , pars[[name]], drop = TRUE])  # iterations x chains
    out[[name]] <- lapply(seq_len(ncol(m)), function(j) unname(m[, j]))
  }
  out
}

divergences <- function(fit) {
  sp <- rstan::get_sampler_params(fit$fit, inc_warmup = FALSE)
  sum(vapply(sp, function(s) sum(s[, "divergent__"]), numeric(1)))
}

result <- list(
  call = paste0("brm(yi | se(sei) ~ 1 + (1 | study), prior = c(prior(normal(0, 10), class = Intercept), ",
                "prior(normal(0, 0.5), class = sd)), chains = ", chains, ", iter = ", iter,
                ", warmup = ", warmup, ", seed = ", seed, ", cores = 1); ",
                "update(fit, newdata = dat, recompile = FALSE, seed = ", seed, ")"),
  k = nrow(dat),
  settings = list(chains = chains, iter = iter, warmup = warmup, seed = seed, cores = 1),
  versions = list(R = R.version.string,
                  brms = as.character(packageVersion("brms")),
                  rstan = as.character(packageVersion("rstan")),
                  StanHeaders = as.character(packageVersion("StanHeaders")),
                  BH = as.character(packageVersion("BH"))),
  timings = list(library = t_library, brm = t_brm, update = t_update,
                 cpu = list(library = c_library, brm = c_brm, update = c_update),
                 brm_stan = stan_times(fit1), update_stan = stan_times(fit2),
                 script_before_write = elapsed() - t_script),
  summary = summarise(fit1),
  summary_update = summarise(fit2),
  divergences = divergences(fit1),
  divergences_update = divergences(fit2),
  draws = draws_by_chain(fit1)
)
jsonlite::write_json(result, out_path, auto_unbox = TRUE, digits = NA, pretty = FALSE)
