# lme4 1.1-31 reference fits of GLMMs with a dispersion parameter (Gamma, inverse Gaussian), fitted
# with a tight PIRLS tolerance (glmer's default tolPwrss = 1e-7 leaves their objective noisy) and
# BOBYQA; the lowest objective any of lme4's optimizers reaches (allFit, same tolerance); and lme4's
# own deviance function, with tolPwrss = 1e-12, at the estimates of the tight fit (its reported
# objective comes from the last PIRLS state and can be ~1e-5 above that).
# Run from the repository root: Rscript tools/make_dispersion_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite); library(dfoptim); library(optimx)})
source("tools/load_data.R")
best_objective <- function(m) {
  fits <- suppressMessages(suppressWarnings(allFit(m, verbose = FALSE)))
  values <- sapply(fits, function(x) if (inherits(x, "merMod")) -2 * as.numeric(logLik(x)) else NA)
  min(c(-2 * as.numeric(logLik(m)), values), na.rm = TRUE)
}
models <- list(
  list(name = "sleep_invgauss_log", data = "sleepstudy", formula = "Reaction ~ Days + (1 | Subject)", family = "inverse.gaussian", link = "log"),
  list(name = "sleep_gamma_log_slope", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", family = "Gamma", link = "log"),
  list(name = "sleep_gamma_identity", data = "sleepstudy", formula = "Reaction ~ Days + (1 | Subject)", family = "Gamma", link = "identity"),
  list(name = "orth_gamma_log_slope", data = "orthodont", formula = "distance ~ age + (age | Subject)", family = "Gamma", link = "log"),
  list(name = "ergo_gamma_log", data = "ergostool", formula = "effort ~ Type + (1 | Subject)", family = "Gamma", link = "log")
)
out <- list()
for (s in models) {
  d <- load_data(s$data)
  fam <- get(s$family)(link = s$link)
  f <- as.formula(s$formula)
  m <- glmer(f, d, family = fam,
             control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10, optCtrl = list(maxfun = 1e5)))
  devfun <- glmer(f, d, family = fam, devFunOnly = TRUE, control = glmerControl(tolPwrss = 1e-12))
  out[[s$name]] <- c(s, list(
    objective = -2 * as.numeric(logLik(m)), best_objective = best_objective(m),
    objective_devfun = devfun(c(getME(m, "theta"), fixef(m))),
    theta = unname(getME(m, "theta")), beta = unname(fixef(m)), sigma = sigma(m),
    stderror = unname(sqrt(diag(as.matrix(vcov(m)))))
  ))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/data/dispersion_reference.json")
