# Reference numbers for the diagnostics: Nakagawa R² and ICC (performance 0.10.2 / insight 0.19.0,
# whose Poisson distribution-specific variance is log(1 + 1/mu), mu = exp(intercept of the null
# model with the same random effects)), lme4's hatvalues(), allFit() objectives and drop1().
# Run from the repository root: Rscript tools/make_diagnostics_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite); library(performance); library(dfoptim); library(optimx)})
ds <- "mixedmodels/datasets/data"
lv <- fromJSON(file.path(ds, "factor_levels.json"), simplifyVector = FALSE)
load_data <- function(name) {
  df <- read.csv(file.path(ds, paste0(name, ".csv")), stringsAsFactors = FALSE, check.names = FALSE)
  for (col in names(lv[[name]])) df[[col]] <- factor(df[[col]], levels = unlist(lv[[name]][[col]]))
  df
}
out <- list(versions = list(lme4 = as.character(packageVersion("lme4")),
                            performance = as.character(packageVersion("performance")),
                            insight = as.character(packageVersion("insight"))))
# Nakagawa's variances by hand (Nakagawa, Johnson & Schielzeth 2017), to check performance's numbers
by_hand <- function(m, dist_var) {
  X <- getME(m, "X"); vf <- var(as.vector(X %*% fixef(m)))
  vc <- VarCorr(m)
  vr <- sum(sapply(names(vc), function(g) { S <- vc[[g]]; Z <- X[, rownames(S), drop = FALSE]; sum(diag(Z %*% S %*% t(Z))) / nrow(X) }))
  c(fixed = vf, random = vr, residual = dist_var)
}
r2entry <- function(name, m, data, f, kind = "lmm", family = NULL, reml = TRUE, dist_var) {
  r2 <- suppressWarnings(r2_nakagawa(m)); ic <- suppressWarnings(icc(m))
  v <- suppressWarnings(insight::get_variance(m))
  out[[name]] <<- list(data = data, formula = f, kind = kind, family = family, reml = reml,
    objective = -2 * as.numeric(logLik(m)), theta = unname(getME(m, "theta")), beta = unname(fixef(m)),
    r2_marginal = unname(r2$R2_marginal), r2_conditional = unname(r2$R2_conditional),
    icc_adjusted = unname(ic$ICC_adjusted), icc_unadjusted = unname(ic$ICC_unadjusted),
    var_fixed = v$var.fixed, var_random = v$var.random, var_residual = v$var.residual,
    by_hand = as.list(by_hand(m, dist_var)))
}
s <- load_data("sleepstudy")
m <- lmer(Reaction ~ Days + (Days | Subject), s)
r2entry("r2_sleepstudy", m, "sleepstudy", "Reaction ~ Days + (Days|Subject)", dist_var = sigma(m)^2)
p <- load_data("penicillin")
m <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), p)
r2entry("r2_penicillin", m, "penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", dist_var = sigma(m)^2)
cb <- load_data("cbpp")
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, family = binomial)
r2entry("r2_cbpp", m, "cbpp", "incidence/size ~ period + (1|herd)", kind = "glmm", family = "binomial", reml = FALSE, dist_var = pi^2 / 3)
g <- load_data("grouseticks")
m <- glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION), g, family = poisson)
m0 <- glmer(TICKS ~ 1 + (1 | BROOD) + (1 | LOCATION), g, family = poisson)
r2entry("r2_grouse", m, "grouseticks", "TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|LOCATION)", kind = "glmm", family = "poisson", reml = FALSE,
        dist_var = log1p(1 / exp(fixef(m0)[[1]])))
out$r2_grouse$null_intercept <- fixef(m0)[[1]]
out$r2_grouse$null_objective <- -2 * as.numeric(logLik(m0))
# lme4's hatvalues on the ML fit (MixedModels.jl's leverage sum is 28.611653305323234)
m <- lmer(Reaction ~ 1 + Days + (1 + Days | Subject), s, REML = FALSE)
out$hat_sleepstudy_ml <- list(hat = unname(hatvalues(m)), sum = sum(hatvalues(m)), theta = unname(getME(m, "theta")))
m <- lmer(diameter ~ 1 + (1 | plate) + (1 | sample), p, REML = FALSE)
out$hat_penicillin_ml <- list(hat = unname(hatvalues(m)), sum = sum(hatvalues(m)), theta = unname(getME(m, "theta")))
# allFit on sleepstudy by ML: the objective of every optimizer
m <- lmer(Reaction ~ 1 + Days + (1 + Days | Subject), s, REML = FALSE)
fits <- suppressMessages(suppressWarnings(allFit(m, verbose = FALSE)))
out$allfit_sleepstudy_ml <- lapply(fits, function(x) if (inherits(x, "merMod")) -2 * as.numeric(logLik(x)) else NA)
# drop1 with likelihood ratio tests (lme4 refits by ML: extractAIC uses refitML)
o <- load_data("grouseticks")
m <- lmer(log(TICKS + 1) ~ YEAR + cHEIGHT + (1 | LOCATION/BROOD), o, REML = FALSE)
d <- drop1(m, test = "Chisq")
out$drop1_grouse_lmm <- list(formula = "log(TICKS+1) ~ YEAR + cHEIGHT + (1|LOCATION/BROOD)", terms = rownames(d),
  df = d$npar, AIC = d$AIC, LRT = d$LRT, p = d$`Pr(Chi)`)
m <- lmer(Reaction ~ Days + (Days | Subject), s)  # a REML fit: drop1 compares ML log-likelihoods
d <- drop1(m, test = "Chisq")
out$drop1_sleepstudy_reml <- list(terms = rownames(d), df = d$npar, AIC = d$AIC, LRT = d$LRT, p = d$`Pr(Chi)`)
m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, family = binomial)
d <- drop1(m, test = "Chisq")
out$drop1_cbpp <- list(terms = rownames(d), df = d$npar, AIC = d$AIC, LRT = d$LRT, p = d$`Pr(Chi)`)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), "tests/data/diagnostics_reference.json")
