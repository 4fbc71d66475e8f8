# Reference fits by lme4 for models beyond the shared reference set.
# Run from the repository root:  Rscript tools/make_extra_reference.R
# Writes tests/data/extra_reference.json (lme4 version recorded in the file).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
ds <- "mixedmodels/datasets/data"
levels_json <- fromJSON(file.path(ds, "factor_levels.json"), simplifyVector = FALSE)
load_data <- function(name) {
  df <- read.csv(file.path(ds, paste0(name, ".csv")), stringsAsFactors = FALSE, check.names = FALSE)
  for (col in names(levels_json[[name]])) df[[col]] <- factor(df[[col]], levels = unlist(levels_json[[name]][[col]]))
  df
}
lmm <- list(
  list(name = "machines_nested", data = "machines", f = "score ~ Machine + (1|Worker) + (1|Worker:Machine)", reml = FALSE),
  list(name = "machines_vector", data = "machines", f = "score ~ Machine + (0 + Machine|Worker)", reml = TRUE),
  list(name = "orthodont_interaction", data = "orthodont", f = "distance ~ age * Sex + (1 + age|Subject)", reml = TRUE),
  list(name = "oats_nested", data = "oats", f = "yield ~ nitro + Variety + (1|Block/Variety)", reml = FALSE),
  list(name = "ergostool_reml", data = "ergostool", f = "effort ~ Type + (1|Subject)", reml = TRUE),
  list(name = "cake_interaction", data = "cake", f = "angle ~ recipe * temperature + (1|recipe:replicate)", reml = TRUE),
  list(name = "pixel_quadratic", data = "pixel", f = "pixel ~ day + I(day^2) + (day|Dog) + (1|Side:Dog)", reml = FALSE,
       py = "pixel ~ day + I(day**2) + (day|Dog) + (1|Side:Dog)"),
  list(name = "rail_reml", data = "rail", f = "travel ~ 1 + (1|Rail)", reml = TRUE),
  list(name = "sleepstudy_log", data = "sleepstudy", f = "log(Reaction) ~ Days + (Days|Subject)", reml = FALSE),
  list(name = "sleepstudy_split_terms", data = "sleepstudy", f = "Reaction ~ Days + (1|Subject) + (0 + Days|Subject)", reml = FALSE),
  list(name = "sleepstudy_weighted", data = "sleepstudy", f = "Reaction ~ Days + (Days|Subject)", reml = TRUE, weights = "w"),
  list(name = "sleepstudy_rankdef", data = "sleepstudy", f = "Reaction ~ Days + Days2 + (1|Subject)", reml = FALSE),
  list(name = "machines_sum_contrasts", data = "machines", f = "score ~ Machine + (1|Worker)", reml = FALSE, contrasts = "Machine")
)
glmm <- list(
  list(name = "cbpp_probit", data = "cbpp", f = "cbind(incidence, size - incidence) ~ period + (1|herd)", family = "binomial", link = "probit", nAGQ = 1),
  list(name = "cbpp_proportion_weights", data = "cbpp", f = "incidence/size ~ period + (1|herd)", family = "binomial", link = "logit", nAGQ = 1, weights = "size"),
  list(name = "sleepstudy_gamma_log", data = "sleepstudy", f = "Reaction ~ Days + (1|Subject)", family = "Gamma", link = "log", nAGQ = 1),
  list(name = "sleepstudy_invgauss_log", data = "sleepstudy", f = "Reaction ~ Days + (1|Subject)", family = "inverse.gaussian", link = "log", nAGQ = 1),
  list(name = "sleepstudy_gaussian_log", data = "sleepstudy", f = "Reaction ~ Days + (1|Subject)", family = "gaussian", link = "log", nAGQ = 1),
  list(name = "grouseticks_offset", data = "grouseticks", f = "TICKS ~ YEAR + (1|BROOD) + offset(log(HEIGHT))", family = "poisson", link = "log", nAGQ = 1),
  list(name = "grouseticks_agq9", data = "grouseticks", f = "TICKS ~ YEAR + cHEIGHT + (1|BROOD)", family = "poisson", link = "log", nAGQ = 9),
  list(name = "arabidopsis_poisson", data = "arabidopsis", f = "total.fruits ~ amd + status + (1|popu) + (1|gen)", family = "poisson", link = "log", nAGQ = 1),
  list(name = "cbpp_vector_fast", data = "cbpp", f = "cbind(incidence, size - incidence) ~ period + (1|herd)", family = "binomial", link = "logit", nAGQ = 0),
  list(name = "verbagg_fast", data = "verbagg", f = "r2 ~ 1 + Anger + Gender + btype + situ + (1|id) + (1|item)", family = "binomial", link = "logit", nAGQ = 0)
)
prep <- function(spec) {
  df <- load_data(spec$data)
  if (spec$data == "sleepstudy") { df$w <- 1 + (df$Days %% 3); df$Days2 <- 2 * df$Days }
  df
}
summarise <- function(m, spec, kind) {
  th <- getME(m, "theta")
  out <- list(name = spec$name, data = spec$data, formula = spec$f, py_formula = if (is.null(spec$py)) spec$f else spec$py,
              kind = kind, reml = if (kind == "lmm") spec$reml else FALSE,
              weights = spec$weights, contrasts = spec$contrasts,
              objective = -2 * as.numeric(logLik(m)), deviance = deviance(m), df = attr(logLik(m), "df"),
              nobs = nobs(m), theta = unname(th), theta_names = names(th),
              beta = unname(fixef(m)), beta_names = names(fixef(m)),
              stderror = unname(sqrt(diag(as.matrix(vcov(m))))), sigma = sigma(m), feval = m@optinfo$feval)
  if (kind == "glmm") {
    out$family <- spec$family; out$link <- spec$link; out$nAGQ <- spec$nAGQ
    out$stderror_rx <- unname(sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE)))))
  }
  out
}
res <- list()
for (spec in lmm) {
  df <- prep(spec)
  args <- list(formula = as.formula(spec$f), data = df, REML = spec$reml)
  if (!is.null(spec$weights)) args$weights <- df[[spec$weights]]
  if (!is.null(spec$contrasts)) { cl <- list(); cl[[spec$contrasts]] <- "contr.sum"; args$contrasts <- cl }
  m <- do.call(lmer, args)
  res[[spec$name]] <- summarise(m, spec, "lmm")
}
for (spec in glmm) {
  df <- prep(spec)
  fam <- get(spec$family)(link = spec$link)
  args <- list(formula = as.formula(spec$f), data = df, family = fam, nAGQ = spec$nAGQ)
  if (!is.null(spec$weights)) args$weights <- df[[spec$weights]]
  m <- do.call(glmer, args)
  res[[spec$name]] <- summarise(m, spec, "glmm")
}
res$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), "tests/data/extra_reference.json")
