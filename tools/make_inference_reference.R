# Extra inference references from R for models beyond the shared sleepstudy set:
# profile intervals (lme4 confint(method = "profile")), Satterthwaite and
# Kenward-Roger degrees of freedom (lmerTest, which calls pbkrtest), likelihood
# ratio tests (lme4 anova) and predictions (lme4 predict).
# Run from the repository root:  Rscript tools/make_inference_reference.R
# Writes tests/inference/data/extra_inference_reference.json (versions recorded in it).
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(jsonlite)})
ds <- "mixedmodels/datasets/data"
levels_json <- fromJSON(file.path(ds, "factor_levels.json"), simplifyVector = FALSE)
load_data <- function(name) {
  df <- read.csv(file.path(ds, paste0(name, ".csv")), stringsAsFactors = FALSE, check.names = FALSE)
  for (col in names(levels_json[[name]])) df[[col]] <- factor(df[[col]], levels = unlist(levels_json[[name]][[col]]))
  df
}
# the estimates, so that tests can evaluate at lme4's optimum (restore_optsum)
estimates <- function(m) {
  list(theta = unname(getME(m, "theta")), beta = unname(fixef(m)), objective = -2 * as.numeric(logLik(m)))
}
intervals <- function(ci) {
  lapply(seq_len(nrow(ci)), function(i) list(parameter = rownames(ci)[i], lower = ci[i, 1], upper = ci[i, 2]))
}

# ---- profile intervals -------------------------------------------------------------------
# (lme4 refits a REML fit by ML for its profile.  Orthodont with a correlated random
# slope is left out: lme4's profile of it breaks down, returning the bounds.)
profiles <- list(
  list(name = "dyestuff_ml", data = "dyestuff", f = "Yield ~ 1 + (1|Batch)", reml = FALSE),
  list(name = "penicillin_ml", data = "penicillin", f = "diameter ~ 1 + (1|plate) + (1|sample)", reml = FALSE),
  list(name = "sleepstudy_uncorrelated_ml", data = "sleepstudy", f = "Reaction ~ 1 + Days + (1|Subject) + (0 + Days|Subject)", reml = FALSE),
  list(name = "pastes_ml", data = "pastes", f = "strength ~ 1 + (1|batch) + (1|sample)", reml = FALSE),
  list(name = "machines_nested_reml", data = "machines", f = "score ~ 1 + Machine + (1|Worker) + (1|Worker:Machine)", reml = TRUE),
  list(name = "cbpp_laplace", data = "cbpp", f = "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)", family = "binomial")
)
prof_out <- list()
for (spec in profiles) {
  df <- load_data(spec$data)
  m <- if (is.null(spec$family)) lme4::lmer(as.formula(spec$f), df, REML = spec$reml) else
         glmer(as.formula(spec$f), df, family = spec$family)
  ci <- confint(m, method = "profile", oldNames = FALSE, level = 0.95)
  prof_out[[spec$name]] <- list(data = spec$data, formula = spec$f, reml = isTRUE(spec$reml),
                                family = spec$family, level = 0.95, interval = intervals(ci))
}

# ---- denominator degrees of freedom -----------------------------------------------------------
ddfs <- list(
  list(name = "penicillin_reml", data = "penicillin", f = "diameter ~ 1 + (1|plate) + (1|sample)"),
  list(name = "machines_nested_reml", data = "machines", f = "score ~ 1 + Machine + (1|Worker) + (1|Worker:Machine)"),
  list(name = "orthodont_reml", data = "orthodont", f = "distance ~ 1 + age * Sex + (1 + age|Subject)"),
  list(name = "pastes_reml", data = "pastes", f = "strength ~ 1 + (1|batch) + (1|sample)"),
  list(name = "sleepstudy_ml", data = "sleepstudy", f = "Reaction ~ 1 + Days + (1 + Days|Subject)", reml = FALSE, kr = FALSE)
)
ddf_out <- list()
for (spec in ddfs) {
  df <- load_data(spec$data)
  reml <- if (is.null(spec$reml)) TRUE else spec$reml
  m <- lmerTest::lmer(as.formula(spec$f), df, REML = reml)
  sat <- summary(m, ddf = "Satterthwaite")$coefficients
  out <- list(data = spec$data, formula = spec$f, reml = reml, coef = rownames(sat),
              estimate = unname(sat[, "Estimate"]), stderror = unname(sat[, "Std. Error"]),
              df_satterthwaite = unname(sat[, "df"]), p_satterthwaite = unname(sat[, "Pr(>|t|)"]),
              fit = estimates(m))
  if (!isFALSE(spec$kr)) {
    kr <- summary(m, ddf = "Kenward-Roger")$coefficients
    out$stderror_kenward_roger <- unname(kr[, "Std. Error"])
    out$df_kenward_roger <- unname(kr[, "df"])
    out$p_kenward_roger <- unname(kr[, "Pr(>|t|)"])
  }
  ddf_out[[spec$name]] <- out
}

# ---- likelihood ratio tests -----------------------------------------------------------------
lrts <- list(
  list(name = "machines_reml", data = "machines", reml = TRUE,
       models = c("score ~ 1 + Machine + (1|Worker)", "score ~ 1 + Machine + (1|Worker) + (1|Worker:Machine)")),
  list(name = "cbpp_period", data = "cbpp", family = "binomial",
       models = c("cbind(incidence, size - incidence) ~ 1 + (1|herd)", "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)"))
)
lrt_out <- list()
for (spec in lrts) {
  df <- load_data(spec$data)
  fits <- lapply(spec$models, function(f) if (is.null(spec$family)) lme4::lmer(as.formula(f), df, REML = spec$reml) else
                                            glmer(as.formula(f), df, family = spec$family))
  a <- suppressMessages(do.call(anova, fits))
  lrt_out[[spec$name]] <- list(data = spec$data, reml = isTRUE(spec$reml), family = spec$family, models = spec$models,
                               dof = unname(a$npar), objective = unname(a$deviance),
                               chisq = unname(a$Chisq[2]), df = unname(a$Df[2]), p = unname(a[["Pr(>Chisq)"]][2]))
}

# ---- predictions --------------------------------------------------------------------------------
# conditional (new levels get 0), population (re.form = NA) and lme4's estimates of a linear model
lmm_predictions <- function(data, formula, reml, newdata, ...) {
  m <- lme4::lmer(as.formula(formula), load_data(data), REML = reml)
  c(list(data = data, formula = formula, reml = reml, newdata = newdata,
         conditional = unname(predict(m, newdata, allow.new.levels = TRUE)),
         marginal = unname(predict(m, newdata, re.form = NA)), fit = estimates(m)),
    lapply(list(...), function(re) unname(predict(m, newdata, re.form = re, allow.new.levels = TRUE))))
}
cb <- load_data("cbpp")
m_cb <- glmer(cbind(incidence, size - incidence) ~ 1 + period + (1|herd), cb, family = binomial)
nd_cb <- data.frame(period = c("1", "2", "4", "3"), herd = c("1", "5", "99", "15"))
pred_out <- list(
  pastes_nested_ml = lmm_predictions("pastes", "strength ~ 1 + (1|batch/cask)", FALSE,
                                     data.frame(batch = c("A", "A", "Z", "B"), cask = c("a", "c", "a", "b"))),
  machines_vector_reml = lmm_predictions("machines", "score ~ 1 + Machine + (0 + Machine|Worker)", TRUE,
                                         data.frame(Machine = c("A", "B", "C", "C"), Worker = c("1", "3", "6", "7"))),
  penicillin_ml = lmm_predictions("penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", FALSE,
                                  data.frame(plate = c("a", "x", "b", "y"), sample = c("A", "B", "Z", "Z")),
                                  plate_only = ~(1|plate)),
  orthodont_reml = lmm_predictions("orthodont", "distance ~ 1 + age * Sex + (1 + age|Subject)", TRUE,
                                   data.frame(age = c(8, 11, 14, 9.5), Sex = c("Male", "Female", "Female", "Male"),
                                              Subject = c("M01", "F03", "F99", "M99"))),
  cbpp_laplace = list(data = "cbpp", formula = "cbind(incidence, size - incidence) ~ 1 + period + (1|herd)",
                      family = "binomial", newdata = nd_cb,
                      link = unname(predict(m_cb, nd_cb, allow.new.levels = TRUE)),
                      response = unname(predict(m_cb, nd_cb, allow.new.levels = TRUE, type = "response")),
                      marginal_link = unname(predict(m_cb, nd_cb, re.form = NA)),
                      fit = estimates(m_cb))
)

res <- list(profile = prof_out, ddf = ddf_out, lrt = lrt_out, predict = pred_out,
            note = "lme4 confint(method='profile'), lmerTest summary(ddf=...), lme4 anova and predict; lmer fits use lme4's default optimizer settings",
            versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            lmerTest = as.character(packageVersion("lmerTest")),
                            pbkrtest = as.character(packageVersion("pbkrtest"))))
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE),
           "tests/inference/data/extra_inference_reference.json")
