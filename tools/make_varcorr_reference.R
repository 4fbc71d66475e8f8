# Variance components and lme4's summary numbers for the printing tests.
# Run from the repository root:  Rscript tools/make_varcorr_reference.R
# Writes tests/data/varcorr_reference.json (lme4 and R versions recorded in it).
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(jsonlite)})
ds <- "mixedmodels/datasets/data"
levels_json <- fromJSON(file.path(ds, "factor_levels.json"), simplifyVector = FALSE)
load_data <- function(name) {
  df <- read.csv(file.path(ds, paste0(name, ".csv")), stringsAsFactors = FALSE, check.names = FALSE)
  for (col in names(levels_json[[name]])) df[[col]] <- factor(df[[col]], levels = unlist(levels_json[[name]][[col]]))
  df
}
one <- function(data, formula, reml, weights = NULL) {
  df <- load_data(data)
  m <- if (is.null(weights)) lmerTest::lmer(as.formula(formula), df, REML = reml) else
    lmerTest::lmer(as.formula(formula), df, REML = reml, weights = eval(parse(text = weights), df))
  vc <- as.data.frame(VarCorr(m))
  s <- summary(m)
  list(data = data, formula = formula, reml = reml, weights = weights, theta = unname(getME(m, "theta")),
       varcorr = lapply(seq_len(nrow(vc)), function(i) list(grp = vc$grp[i], var1 = vc$var1[i], var2 = vc$var2[i],
                                                             vcov = vc$vcov[i], sdcor = vc$sdcor[i])),
       scaled_residuals = unname(quantile(residuals(m, type = "pearson", scaled = TRUE))),
       coef_df = unname(s$coefficients[, "df"]),
       fixef_correlation = unname(as.matrix(cov2cor(vcov(m)))))
}
res <- list(
  machines_vector_reml = one("machines", "score ~ 1 + Machine + (0 + Machine|Worker)", TRUE),
  sleepstudy_reml = one("sleepstudy", "Reaction ~ 1 + Days + (1 + Days|Subject)", TRUE),
  # prior weights: the scaled residuals are Pearson residuals sqrt(w) (y - fitted) / sigma
  sleepstudy_weighted_reml = one("sleepstudy", "Reaction ~ 1 + Days + (1 + Days|Subject)", TRUE, "Days + 1"),
  source = "lme4 (as.data.frame(VarCorr), residuals(type='pearson', scaled=TRUE)) and lmerTest (summary df)",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest"))))
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE),
           "tests/data/varcorr_reference.json")
