# Reference fits by glmmTMB (and lme4::glmer.nb) for the negative binomial, beta and
# zero-inflated families.  Run from the repository root:
#   Rscript tools/make_glmmtmb_reference.R
# Writes the data sets used to mixedmodels/datasets/data (CSV and their factor levels in
# tests/data/glmmtmb_levels.json, merged into factor_levels.json by the Python side) and the
# fits to tests/data/glmmtmb_reference.json.
suppressPackageStartupMessages({library(glmmTMB); library(lme4); library(MASS); library(jsonlite)})
ds <- "mixedmodels/datasets/data"

data("Salamanders", package = "glmmTMB")
data("Owls", package = "glmmTMB")
data("epil", package = "MASS")
sal <- Salamanders[, c("site", "mined", "cover", "sample", "DOP", "Wtemp", "DOY", "spp", "count")]
owls <- Owls[, c("Nest", "FoodTreatment", "SexParent", "ArrivalTime", "SiblingNegotiation", "BroodSize")]
epil <- epil[, c("y", "trt", "base", "age", "V4", "subject", "period", "lbase", "lage")]
epil$subject <- factor(epil$subject)
# a simulated proportions data set: 40 groups of 12, logit mean, precision 8
set.seed(20261201)
g <- factor(rep(sprintf("g%02d", 1:40), each = 12))
x <- round(rnorm(480), 4)
trt <- factor(rep(c("control", "treated"), 240))
eta <- -0.3 + 0.5 * x + 0.4 * (trt == "treated") + rep(rnorm(40, sd = 0.6), each = 12)
mu <- plogis(eta); phi <- 8
prop <- round(rbeta(480, mu * phi, (1 - mu) * phi), 6)
prop <- pmin(pmax(prop, 1e-6), 1 - 1e-6)
betasim <- data.frame(prop = prop, x = x, trt = trt, g = g)
# a simulated 5,000-observation negative binomial problem with 200 groups (benchmark)
set.seed(5000)
gg <- factor(sprintf("s%03d", rep(1:200, each = 25)))
xx <- round(rnorm(5000), 4)
etan <- 0.5 + 0.3 * xx + rep(rnorm(200, sd = 0.5), each = 25)
nbsim <- data.frame(y = rnbinom(5000, mu = exp(etan), size = 2), x = xx, g = gg)

sets <- list(salamanders = sal, owls = owls, epil = epil, betasim = betasim, nbsim = nbsim)
levels_out <- list()
for (nm in names(sets)) {
  df <- sets[[nm]]
  fac <- names(df)[vapply(df, is.factor, logical(1))]
  levels_out[[nm]] <- setNames(lapply(fac, function(col) levels(df[[col]])), fac)
  for (col in fac) df[[col]] <- as.character(df[[col]])
  write.csv(df, file.path(ds, paste0(nm, ".csv")), row.names = FALSE)
}
writeLines(toJSON(levels_out, auto_unbox = FALSE, pretty = TRUE), "tests/data/glmmtmb_levels.json")

tmb_record <- function(m) {
  sdr <- m$sdr
  full <- vcov(m, full = TRUE)
  se_full <- sqrt(diag(full))
  pars <- m$fit$par
  out <- list(
    objective = -2 * as.numeric(logLik(m)),
    df = attr(logLik(m), "df"),
    coefnames = names(fixef(m)$cond),
    beta = unname(fixef(m)$cond),
    se = unname(sqrt(diag(vcov(m)$cond))),
    sd = unname(sapply(VarCorr(m)$cond, function(v) attr(v, "stddev"))),
    sigma = sigma(m),
    par = unname(pars), par_names = names(pars),
    se_par = unname(se_full), se_par_names = names(se_full),
    convergence = m$fit$convergence,
    aic = AIC(m)
  )
  if (length(fixef(m)$zi)) {
    out$zi_coefnames <- names(fixef(m)$zi)
    out$zi_beta <- unname(fixef(m)$zi)
    out$zi_se <- unname(sqrt(diag(vcov(m)$zi)))
  }
  out$mu_head <- unname(head(fitted(m), 10))
  out
}

fits <- list()
tmb <- list(
  list(name = "sal_nb2", data = "salamanders", f = count ~ spp * mined + (1 | site), family = nbinom2(), zi = ~0),
  list(name = "sal_nb1", data = "salamanders", f = count ~ spp * mined + (1 | site), family = nbinom1(), zi = ~0),
  list(name = "sal_poisson", data = "salamanders", f = count ~ spp * mined + (1 | site), family = poisson(), zi = ~0),
  list(name = "sal_zip", data = "salamanders", f = count ~ spp * mined + (1 | site), family = poisson(), zi = ~spp),
  list(name = "sal_zinb", data = "salamanders", f = count ~ spp * mined + (1 | site), family = nbinom2(), zi = ~spp),
  list(name = "sal_zinb_mined", data = "salamanders", f = count ~ spp * mined + (1 | site), family = nbinom2(), zi = ~1),
  list(name = "sal_zinb_zimined", data = "salamanders", f = count ~ spp * mined + (1 | site), family = nbinom2(), zi = ~mined),
  list(name = "owls_nb1_zi", data = "owls",
       f = SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), family = nbinom1(), zi = ~1),
  list(name = "owls_nb2_zi", data = "owls",
       f = SiblingNegotiation ~ FoodTreatment * SexParent + offset(log(BroodSize)) + (1 | Nest), family = nbinom2(), zi = ~1),
  list(name = "epil_nb2", data = "epil", f = y ~ lbase * trt + lage + V4 + (1 | subject), family = nbinom2(), zi = ~0),
  list(name = "beta_sim", data = "betasim", f = prop ~ x + trt + (1 | g), family = beta_family(), zi = ~0)
)
for (s in tmb) {
  m <- glmmTMB(s$f, data = sets[[s$data]], family = s$family, ziformula = s$zi)
  rec <- tmb_record(m)
  rec$data <- s$data
  rec$formula <- paste(deparse(s$f), collapse = "")
  rec$family <- s$family$family
  rec$ziformula <- paste(deparse(s$zi), collapse = "")
  rec$tool <- "glmmTMB"
  fits[[s$name]] <- rec
  cat(s$name, rec$objective, "\n")
}

nb <- list(
  list(name = "epil_glmer_nb", data = "epil", f = y ~ lbase * trt + lage + V4 + (1 | subject)),
  list(name = "sal_glmer_nb", data = "salamanders", f = count ~ spp * mined + (1 | site))
)
for (s in nb) {
  m <- glmer.nb(s$f, data = sets[[s$data]])
  fits[[s$name]] <- list(
    data = s$data, formula = paste(deparse(s$f), collapse = ""), tool = "lme4::glmer.nb",
    objective = -2 * as.numeric(logLik(m)),
    coefnames = names(fixef(m)), beta = unname(fixef(m)),
    se = unname(sqrt(diag(as.matrix(vcov(m))))),
    theta = unname(getME(m, "theta")),
    nb_shape = getME(m, "glmer.nb.theta")
  )
  cat(s$name, fits[[s$name]]$objective, "\n")
}
fits$versions <- list(R = R.version.string, glmmTMB = as.character(packageVersion("glmmTMB")),
                      lme4 = as.character(packageVersion("lme4")), TMB = as.character(packageVersion("TMB")))
writeLines(toJSON(fits, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/data/glmmtmb_reference.json")
