# More lme4 reference fits: vector terms with other terms, nested and crossed slopes, probit/cloglog,
# quadrature with a non-canonical link. Run from the repository root: Rscript tools/make_more_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite); library(dfoptim); library(optimx)})
source("tools/load_data.R")
out <- list()
add <- function(name, m, data, f, py=f, kind="lmm", family=NULL, link=NULL, nAGQ=1, reml=FALSE) {
  th <- getME(m, "theta")
  out[[name]] <<- list(data=data, formula=f, py_formula=py, kind=kind, reml=reml, family=family, link=link, nAGQ=nAGQ,
    objective=-2*as.numeric(logLik(m)), theta=unname(th), beta=unname(fixef(m)), beta_names=names(fixef(m)),
    stderror=unname(sqrt(diag(as.matrix(vcov(m))))), stderror_rx=if (kind=="glmm") unname(sqrt(diag(as.matrix(vcov(m, use.hessian=FALSE))))) else NULL,
    sigma=sigma(m), best_objective=best_objective(m))
}
# The lowest objective any of lme4's optimizers reaches (allFit): lme4's default sometimes stops
# short (grouse_lmm_slope: 882.66 by default, 871.60 by every other optimizer).
best_objective <- function(m) {
  fits <- suppressMessages(suppressWarnings(allFit(m, verbose = FALSE)))
  values <- sapply(fits, function(x) if (inherits(x, "merMod")) -2 * as.numeric(logLik(x)) else NA)
  min(c(-2 * as.numeric(logLik(m)), values), na.rm = TRUE)
}
s <- load_data("sleepstudy"); s$dayf <- factor(s$Days)
m <- lmer(Reaction ~ Days + (Days|Subject) + (1|dayf), s, REML=FALSE); add("ss_vec_plus_day", m, "sleepstudy", "Reaction ~ Days + (Days|Subject) + (1|dayf)")
o <- load_data("orthodont")
m <- lmer(distance ~ age + Sex + (age|Subject), o, REML=TRUE); add("orth_reml", m, "orthodont", "distance ~ age + Sex + (age|Subject)", reml=TRUE)
g <- load_data("grouseticks")
m <- lmer(log(TICKS+1) ~ YEAR + cHEIGHT + (1|LOCATION/BROOD), g, REML=FALSE); add("grouse_lmm_nested", m, "grouseticks", "log(TICKS+1) ~ YEAR + cHEIGHT + (1|LOCATION/BROOD)")
m <- lmer(log(TICKS+1) ~ YEAR + (1 + cHEIGHT|LOCATION) + (1|BROOD), g, REML=FALSE); add("grouse_lmm_slope", m, "grouseticks", "log(TICKS+1) ~ YEAR + (1 + cHEIGHT|LOCATION) + (1|BROOD)")
m <- glmer(TICKS ~ YEAR + (1 + cHEIGHT|LOCATION), g, family=poisson); add("grouse_pois_slope", m, "grouseticks", "TICKS ~ YEAR + (1 + cHEIGHT|LOCATION)", kind="glmm", family="poisson", link="log")
v <- load_data("verbagg")
m <- glmer(r2 ~ Anger + Gender + btype + (1|id), v, family=binomial("probit")); add("verb_probit", m, "verbagg", "r2 ~ Anger + Gender + btype + (1|id)", kind="glmm", family="binomial", link="probit")
m <- glmer(r2 ~ Anger + btype + (1|id), v, family=binomial("cloglog"), nAGQ=5); add("verb_cloglog_agq5", m, "verbagg", "r2 ~ Anger + btype + (1|id)", kind="glmm", family="binomial", link="cloglog", nAGQ=5)
a <- load_data("arabidopsis")
m <- glmer(total.fruits ~ amd + (1|popu) + (1|gen) + (1|reg), a, family=poisson); add("arab_three", m, "arabidopsis", "total.fruits ~ amd + (1|popu) + (1|gen) + (1|reg)", kind="glmm", family="poisson", link="log")
p <- load_data("pixel")
m <- lmer(pixel ~ day + I(day^2) + (day|Dog) + (1|Side:Dog), p, REML=TRUE); add("pixel_reml", m, "pixel", "pixel ~ day + I(day^2) + (day|Dog) + (1|Side:Dog)", "pixel ~ day + I(day**2) + (day|Dog) + (1|Side:Dog)", reml=TRUE)
e <- load_data("ergostool")
m <- lmer(effort ~ Type + (1|Subject), e, REML=FALSE); add("ergo_ml", m, "ergostool", "effort ~ Type + (1|Subject)")
writeLines(toJSON(out, auto_unbox=TRUE, digits=NA, null="null", pretty=TRUE), "tests/data/more_reference.json")
