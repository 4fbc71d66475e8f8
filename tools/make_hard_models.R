# Hard models on real data: lme4's default fit, the best of lme4's optimizers (allFit) and glmmTMB.
# Writes the columns each model uses to tests/data/hard/<data>.csv.gz and the numbers to
# tests/data/hard/hard_models.json (beside the data; reference/ holds one model per file).  Run from the repository root:
#     Rscript tools/make_hard_models.R [model-name ...]
# (names restrict the run to those models and merge them into the existing JSON).
suppressPackageStartupMessages({
  library(lme4); library(mlmRev); library(afex); library(HSAUR3); library(glmmTMB); library(jsonlite)
  library(optimx); library(dfoptim)
})
outdir <- "tests/data/hard"
reffile <- Sys.getenv("HARD_MODELS_JSON", "tests/data/hard/hard_models.json")  # another file for a parallel run
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)

unorder <- function(df) { for (n in names(df)) if (is.factor(df[[n]])) df[[n]] <- factor(df[[n]], ordered = FALSE); df }
pm <- function(x, hi) ifelse(x == hi, 0.5, -0.5)   # a two-level factor as a centred numeric contrast

# ---- data sets (only the columns the models use) -------------------------------------------------
datasets <- list(
  chem97 = function() Chem97[, c("score", "gcsecnt", "school", "lea")],
  fhch2010 = function() {
    d <- fhch2010
    d$task_c <- pm(d$task, "lexdec"); d$stim_c <- pm(d$stimulus, "nonword")
    d$dens_c <- pm(d$density, "high"); d$freq_c <- pm(d$frequency, "high")
    d[, c("log_rt", "task", "stimulus", "task_c", "stim_c", "dens_c", "freq_c", "id", "item")]
  },
  scotssec = function() ScotsSec[, c("attain", "verbal", "sex", "social", "primary", "second")],
  star = function() { d <- unorder(star); d[, c("math", "gr", "sx", "eth", "cltype", "yrs", "id", "tch", "sch")] },
  egsingle = function() egsingle[, c("math", "year", "female", "black", "hispanic", "childid", "schoolid")],
  oxboys = function() { d <- Oxboys; d$age2 <- d$age^2; d[, c("height", "age", "age2", "Subject")] },
  # age in months from birth, as a user might enter it: uncentred and large, so the intercept and slope
  # standard deviations differ by orders of magnitude and are strongly correlated
  oxboys_months = function() {
    d <- Oxboys; d$agem <- (d$age + 13) * 12; d$agem2 <- d$agem^2 / 100
    d[, c("height", "agem", "agem2", "Subject")]
  },
  guimmun = function() {
    d <- guImmun; d$immun <- as.integer(d$immun == "Y")
    d[, c("immun", "kid2p", "mom25p", "ord", "ethn", "momEd", "husEd", "momWork", "rural", "pcInd81", "mom", "comm")]
  },
  contraception = function() {
    d <- Contraception; d$use <- as.integer(d$use == "Y"); d$age2 <- d$age^2
    d[, c("use", "age", "age2", "urban", "livch", "district")]
  },
  toenail = function() {
    d <- toenail; d$outcome <- as.integer(d$outcome != "none or mild")
    d[, c("outcome", "treatment", "visit", "patientID")]
  },
  hsb82 = function() Hsb82[, c("mAch", "meanses", "cses", "sector", "school")],
  exam = function() Exam[, c("normexam", "standLRT", "sex", "schgend", "school")],
  grouseticks = function() grouseticks[, c("TICKS", "YEAR", "cHEIGHT", "LOCATION", "BROOD")],
  early = function() { d <- Early; d$agec <- d$age - 1; d[, c("cog", "trt", "agec", "id")] }
)

# ---- models: formula for lme4 and the package, uncorrelated terms spelt out for glmmTMB -------------
mk <- function(name, data, formula, reml = FALSE, family = NULL) list(name = name, data = data, formula = formula, reml = reml, family = family)
models <- list(
  mk("chem97_slope_reml", "chem97", "score ~ gcsecnt + (1 | lea) + (1 + gcsecnt | school)", reml = TRUE),
  mk("fhch_zerocorr_ml", "fhch2010",
     "log_rt ~ task_c * stim_c * dens_c * freq_c + (1 + stim_c + dens_c + freq_c || id) + (1 + task_c || item)"),
  mk("fhch_factor_zerocorr_ml", "fhch2010", "log_rt ~ task * stimulus + (1 + stimulus || id) + (1 + task || item)"),
  mk("scotssec_crossed_ml", "scotssec", "attain ~ verbal + sex + social + (1 | primary) + (1 | second)"),
  mk("star_crossed_ml", "star", "math ~ gr + sx + eth + cltype + (1 | id) + (1 | tch) + (1 | sch)"),
  mk("egsingle_growth_reml", "egsingle", "math ~ year + female + black + hispanic + (1 + year | childid) + (1 + year | schoolid)", reml = TRUE),
  mk("oxboys_quadratic_reml", "oxboys", "height ~ age + age2 + (1 + age + age2 | Subject)", reml = TRUE),
  mk("oxboys_months_linear_reml", "oxboys_months", "height ~ agem + (1 + agem | Subject)", reml = TRUE),
  mk("oxboys_months_quadratic_reml", "oxboys_months", "height ~ agem + agem2 + (1 + agem + agem2 | Subject)", reml = TRUE),
  mk("hsb82_slope_reml", "hsb82", "mAch ~ meanses * cses + sector * cses + (1 + cses | school)", reml = TRUE),
  mk("exam_slope_ml", "exam", "normexam ~ standLRT + sex + schgend + (1 + standLRT | school)"),
  mk("early_slope_ml", "early", "cog ~ trt * agec + (1 + agec | id)"),
  # lme4's default stops 11 above the optimum here (tests/test_more_reference.py keeps lme4's path for it)
  mk("grouse_lmm_slope_ml", "grouseticks", "log(TICKS + 1) ~ YEAR + (1 + cHEIGHT | LOCATION) + (1 | BROOD)"),
  mk("guimmun_three_level", "guimmun",
     "immun ~ kid2p + mom25p + ord + ethn + momEd + husEd + momWork + rural + pcInd81 + (1 | mom) + (1 | comm)", family = "binomial"),
  mk("contraception_slope", "contraception", "use ~ age + age2 + urban + livch + (1 + urban | district)", family = "binomial"),
  mk("toenail_bernoulli", "toenail", "outcome ~ treatment * visit + (1 | patientID)", family = "binomial")
)

tmb_formula <- function(f) {
  # glmmTMB does not expand ||: spell the uncorrelated terms out (lme4's own expansion)
  deparse1(lme4:::expandDoubleVerts(as.formula(f)))
}

fit_lme4 <- function(spec, d) {
  f <- as.formula(spec$formula)
  if (is.null(spec$family)) lmer(f, d, REML = spec$reml) else glmer(f, d, family = spec$family)
}
crit <- function(m) -2 * as.numeric(logLik(m))   # deviance (ML, Laplace with constants) or REML criterion

summarise <- function(spec, d) {
  cat(spec$name, "\n")
  t0 <- proc.time()[["elapsed"]]
  m <- fit_lme4(spec, d)
  t_default <- proc.time()[["elapsed"]] - t0
  af <- allFit(m, verbose = FALSE)
  ok <- Filter(function(x) !inherits(x, "error"), af)
  objs <- vapply(ok, crit, 0.0)
  best <- ok[[which.min(objs)]]
  tmb <- tryCatch({
    fam <- if (is.null(spec$family)) gaussian() else get(spec$family)()
    tm <- glmmTMB(as.formula(tmb_formula(spec$formula)), d, family = fam, REML = spec$reml)
    if (is.na(logLik(tm))) NULL else list(objective = crit(tm), converged = tm$fit$convergence == 0)
  }, error = function(e) NULL)
  list(
    data = spec$data, formula = spec$formula, reml = spec$reml, kind = if (is.null(spec$family)) "lmm" else "glmm",
    family = spec$family, nobs = nobs(m),
    lme4_default = list(objective = crit(m), theta = unname(getME(m, "theta")), beta = unname(fixef(m)),
                        feval = m@optinfo$feval, seconds = t_default,
                        messages = as.list(unlist(m@optinfo$conv$lme4$messages))),
    allfit = lapply(objs, function(x) x),
    best = list(optimizer = names(objs)[which.min(objs)], objective = min(objs),
                theta = unname(getME(best, "theta")), beta = unname(fixef(best)), beta_names = names(fixef(best))),
    glmmtmb = tmb,
    reference_objective = min(c(objs, if (!is.null(tmb)) tmb$objective)),
    theta_names = names(getME(m, "theta"))
  )
}

write_data <- function(name) {
  d <- datasets[[name]]()
  levels <- lapply(Filter(function(x) is.factor(x) && nlevels(x) <= 100, d), levels)  # grouping factors: order irrelevant
  con <- gzfile(file.path(outdir, paste0(name, ".csv.gz")), "w")
  write.csv(d, con, row.names = FALSE)
  close(con)
  list(d = d, levels = levels)
}

args <- commandArgs(trailingOnly = TRUE)
todo <- if (length(args)) Filter(function(s) s$name %in% args, models) else models
out <- if (length(args) && file.exists(reffile)) fromJSON(reffile, simplifyVector = FALSE) else list()
out$models <- if (is.null(out$models)) list() else out$models
out$levels <- if (is.null(out$levels)) list() else out$levels
cache <- list()
for (spec in todo) {
  if (is.null(cache[[spec$data]])) {
    cache[[spec$data]] <- write_data(spec$data)
    out$levels[[spec$data]] <- cache[[spec$data]]$levels
  }
  out$models[[spec$name]] <- summarise(spec, cache[[spec$data]]$d)
  out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                       glmmTMB = as.character(packageVersion("glmmTMB")), mlmRev = as.character(packageVersion("mlmRev")),
                       afex = as.character(packageVersion("afex")), HSAUR3 = as.character(packageVersion("HSAUR3")))
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE), reffile)
}
