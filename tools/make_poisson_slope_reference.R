# Poisson random-slope GLMMs with a covariate of sd ~20: the models whose PIRLS warm start
# produced numerically singular blocks (issue 11).  Writes the data sets and the reference fits:
#   tests/data/poisson_slopes/<name>.csv and tests/data/poisson_slopes/reference.json
# Run from the repository root: Rscript tools/make_poisson_slope_reference.R
suppressPackageStartupMessages({library(lme4); library(glmmTMB); library(jsonlite)})
out_dir <- "tests/data/poisson_slopes"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

simulate_counts <- function(seed, n_groups, per, sd_x, sd_b1) {
  set.seed(seed)
  g <- rep(seq_len(n_groups), each = per)
  x <- rnorm(length(g), 50, sd_x)
  b0 <- rnorm(n_groups, 0, 0.5)
  b1 <- rnorm(n_groups, 0, sd_b1)
  eta <- 0.5 + 0.01 * x + b0[g] + b1[g] * x
  data.frame(y = rpois(length(g), exp(eta)), x = round(x, 6), g = sprintf("g%02d", g))
}

specs <- list(
  slope_a = list(seed = 1, n_groups = 40, per = 12, sd_x = 20, sd_b1 = 0.01),
  slope_b = list(seed = 7, n_groups = 25, per = 20, sd_x = 20, sd_b1 = 0.005),
  slope_c = list(seed = 11, n_groups = 60, per = 8, sd_x = 25, sd_b1 = 0.015)
)
form <- y ~ 1 + x + (1 + x | g)
res <- list()
for (name in names(specs)) {
  s <- specs[[name]]
  d <- do.call(simulate_counts, s)
  write.csv(d, file.path(out_dir, paste0(name, ".csv")), row.names = FALSE)
  fits <- list(
    glmer_default = glmer(form, d, family = poisson),
    glmer_bobyqa_tight = glmer(form, d, family = poisson,
                               control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                                                      optCtrl = list(maxfun = 1e5)))
  )
  rows <- lapply(fits, function(m) list(objective = -2 * as.numeric(logLik(m)),
                                        theta = unname(getME(m, "theta")),
                                        beta = unname(fixef(m))))
  tmb <- glmmTMB(form, d, family = poisson)
  rows$glmmTMB <- list(objective = -2 * as.numeric(logLik(tmb)), beta = unname(fixef(tmb)$cond))
  res[[name]] <- c(list(formula = "y ~ 1 + x + (1 + x|g)", family = "poisson",
                        lme4 = as.character(packageVersion("lme4")),
                        glmmTMB_version = as.character(packageVersion("glmmTMB"))), rows)
}
write(toJSON(res, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(out_dir, "reference.json"))
