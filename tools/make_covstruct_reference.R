# Reference fits of structured random-effects covariances (tests/test_covstruct.py).
# Run from the repository root:  Rscript tools/make_covstruct_reference.R
# Writes mixedmodels/datasets/data/btheb.csv (HSAUR3 BtheB in long form; its factor
# levels are in factor_levels.json), tests/data/covstruct/contraception.csv (so the tests
# need no R), tests/data/covstruct/simrm.csv (simulated repeated measures) and
# tests/data/covstruct_reference.json.
#
# Oracles: glmmTMB 1.1.5 (diag, us, cs and toep heterogeneous; ar1 homogeneous),
# its `map` argument for the homogeneous variants (one shared log-sd), and, for a
# heterogeneous AR(1) that glmmTMB 1.1.5 lacks, lme4's own profiled deviance
# (lFormula/mkLmerDevfun) evaluated at the Cholesky factor of D R(rho) D written here.
suppressPackageStartupMessages({
  library(glmmTMB); library(lme4); library(jsonlite); library(HSAUR3); library(mlmRev)
})
ds <- "mixedmodels/datasets/data"
levels_json <- fromJSON(file.path(ds, "factor_levels.json"), simplifyVector = FALSE)
load_data <- function(name) {
  df <- read.csv(file.path(ds, paste0(name, ".csv")), stringsAsFactors = FALSE, check.names = FALSE)
  for (col in names(levels_json[[name]])) df[[col]] <- factor(df[[col]], levels = unlist(levels_json[[name]][[col]]))
  df
}
sleep <- load_data("sleepstudy")
sleep$Daysf <- factor(sleep$Days)
oats <- load_data("oats")
oats$nitrof <- factor(oats$nitro)

data("BtheB", package = "HSAUR3")
BtheB$subject <- factor(seq_len(nrow(BtheB)))
long <- reshape(BtheB, direction = "long", idvar = "subject", varying = c("bdi.2m", "bdi.3m", "bdi.5m", "bdi.8m"),
                v.names = "bdi", timevar = "time", times = c(2, 3, 5, 8))
long <- long[order(long$subject, long$time), c("subject", "drug", "length", "treatment", "bdi.pre", "time", "bdi")]
long <- long[!is.na(long$bdi), ]
long$timef <- factor(long$time)
write.csv(long[, c("subject", "drug", "length", "treatment", "bdi.pre", "time", "bdi")],
          "mixedmodels/datasets/data/btheb.csv", row.names = FALSE)

data("Contraception", package = "mlmRev")
contra <- Contraception
contra$use <- as.integer(contra$use == "Y")
write.csv(contra[, c("woman", "district", "use", "livch", "age", "urban")],
          "tests/data/covstruct/contraception.csv", row.names = FALSE)

summarise <- function(m, group, seconds) {
  vc <- VarCorr(m)$cond[[group]]
  s <- summary(m)$coefficients$cond
  list(m2loglik = 2 * m$fit$objective, pdHess = m$sdr$pdHess, beta = unname(fixef(m)$cond), se = unname(s[, "Std. Error"]),
       coefnames = rownames(s), sigma = if (family(m)$family == "gaussian") sigma(m) else NULL,
       Sigma = unname(as.matrix(vc)), convergence = m$fit$convergence, seconds = seconds)
}
tmb <- function(data, formula, group, family = gaussian(), map = NULL) {
  message(formula)
  t0 <- proc.time()[["elapsed"]]
  m <- tryCatch(glmmTMB(as.formula(formula), data, family = family, map = map, REML = FALSE),
                error = function(e) conditionMessage(e))
  if (is.character(m)) return(list(error = m))
  summarise(m, group, proc.time()[["elapsed"]] - t0)
}

# heterogeneous AR(1) through lme4's deviance function: theta is lambda's lower triangle
lme4_ar1 <- function(data, formula, k, hom = FALSE) {
  lf <- lFormula(as.formula(formula), data, REML = FALSE,
                 control = lmerControl(check.nobs.vs.nRE = "ignore"))
  dev <- do.call(mkLmerDevfun, lf)
  lam <- function(p) {
    s <- if (hom) rep(p[1], k) else p[1:k]; rho <- tanh(p[length(p)])
    R <- rho^abs(outer(1:k, 1:k, "-"))
    L <- t(chol(diag(s) %*% R %*% diag(s)))
    L[lower.tri(L, diag = TRUE)]
  }
  f <- function(p) dev(lam(p))
  nsd <- if (hom) 1 else k
  start <- c(rep(1, nsd), 0.5)
  ctrl <- list(eval.max = 1e4, iter.max = 1e4, rel.tol = 1e-14)
  opt <- nlminb(start, f, lower = c(rep(0, nsd), -Inf), control = ctrl)
  opt <- nlminb(opt$par, f, lower = c(rep(0, nsd), -Inf), control = ctrl)
  dev(lam(opt$par))
  m <- mkMerMod(environment(dev), list(par = lam(opt$par), fval = opt$objective, conv = 0, message = ""), lf$reTrms, fr = lf$fr)
  s <- summary(m)$coefficients
  L <- diag(k); L[lower.tri(L, diag = TRUE)] <- lam(opt$par)
  list(m2loglik = opt$objective, beta = unname(fixef(m)), se = unname(s[, "Std. Error"]), coefnames = rownames(s),
       sigma = sigma(m), Sigma = sigma(m)^2 * L %*% t(L), rho = tanh(opt$par[length(opt$par)]))
}

# simulated repeated measures, two per subject and visit, so that us(0 + timef | id) is identified
set.seed(15)
lagm <- abs(outer(1:4, 1:4, "-"))
Sb <- outer(c(2, 2.5, 3, 3.5), c(2, 2.5, 3, 3.5)) * (0.3 + 0.6 * 0.6^lagm)
b <- t(chol(Sb)) %*% matrix(rnorm(4 * 60), 4)
sim <- expand.grid(rep = 1:2, time = 1:4, id = 1:60)
sim$y <- 0.5 * sim$time + b[cbind(sim$time, sim$id)] + rnorm(nrow(sim))
sim <- sim[, c("id", "time", "y")]
write.csv(sim, "tests/data/covstruct/simrm.csv", row.names = FALSE)
sim$id <- factor(sim$id); sim$timef <- factor(sim$time)

k3 <- function(x) factor(rep(1, x))
res <- list(
  sleep_ar1 = c(list(data = "sleepstudy", formula = "Reaction ~ Daysf + ar1(0 + Daysf | Subject)"),
                tmb(sleep, "Reaction ~ Daysf + ar1(0 + Daysf | Subject)", "Subject")),
  # the residual variance goes to 0 here (sigma -> 0 is theta -> infinity in lme4's parametrisation)
  sleep_ar1_lme4 = c(list(data = "sleepstudy", formula = "Reaction ~ Daysf + ar1(0 + Daysf | Subject)",
                          oracle = "lme4 1.1-31 devfun at chol(D R D)"),
                     lme4_ar1(sleep, "Reaction ~ Daysf + (0 + Daysf | Subject)", 10, hom = TRUE)),
  btheb_hetar1 = c(list(data = "btheb", formula = "bdi ~ bdi.pre + treatment + drug + length + timef + hetar1(0 + timef | subject)",
                        oracle = "lme4 1.1-31 devfun at chol(D R D)"),
                   lme4_ar1(long, "bdi ~ bdi.pre + treatment + drug + length + timef + (0 + timef | subject)", 4)),
  sleep_cs = c(list(data = "sleepstudy", formula = "Reaction ~ Daysf + cs(0 + Daysf | Subject)"),
               tmb(sleep, "Reaction ~ Daysf + cs(0 + Daysf | Subject)", "Subject")),
  sleep_cs2 = c(list(data = "sleepstudy", formula = "Reaction ~ Days + cs(1 + Days | Subject)"),
                tmb(sleep, "Reaction ~ Days + cs(1 + Days | Subject)", "Subject")),
  sleep_diag = c(list(data = "sleepstudy", formula = "Reaction ~ Days + diag(1 + Days | Subject)"),
                 tmb(sleep, "Reaction ~ Days + diag(1 + Days | Subject)", "Subject")),
  sleep_us = c(list(data = "sleepstudy", formula = "Reaction ~ Days + us(1 + Days | Subject)"),
               tmb(sleep, "Reaction ~ Days + us(1 + Days | Subject)", "Subject")),
  sleep_toep = c(list(data = "sleepstudy", formula = "Reaction ~ Daysf + toep(0 + Daysf | Subject)"),
                 tmb(sleep, "Reaction ~ Daysf + toep(0 + Daysf | Subject)", "Subject")),
  oats_homcs = c(list(data = "oats", formula = "yield ~ nitrof + Variety + homcs(0 + Variety | Block)",
                      oracle = "glmmTMB cs with map sharing the log-sds"),
                 tmb(oats, "yield ~ nitrof + Variety + cs(0 + Variety | Block)", "Block", map = list(theta = factor(c(1, 1, 1, 2))))),
  oats_cs = c(list(data = "oats", formula = "yield ~ nitrof + Variety + cs(0 + Variety | Block)"),
              tmb(oats, "yield ~ nitrof + Variety + cs(0 + Variety | Block)", "Block")),
  oats_homdiag = c(list(data = "oats", formula = "yield ~ nitrof + Variety + homdiag(0 + Variety | Block)",
                        oracle = "glmmTMB diag with map sharing the log-sds"),
                   tmb(oats, "yield ~ nitrof + Variety + diag(0 + Variety | Block)", "Block", map = list(theta = k3(3)))),
  btheb_cs = c(list(data = "btheb", formula = "bdi ~ bdi.pre + treatment + drug + length + timef + cs(0 + timef | subject)"),
               tmb(long, "bdi ~ bdi.pre + treatment + drug + length + timef + cs(0 + timef | subject)", "subject")),
  btheb_ar1 = c(list(data = "btheb", formula = "bdi ~ bdi.pre + treatment + drug + length + timef + ar1(0 + timef | subject)"),
                tmb(long, "bdi ~ bdi.pre + treatment + drug + length + timef + ar1(0 + timef | subject)", "subject")),
  btheb_toep = c(list(data = "btheb", formula = "bdi ~ bdi.pre + treatment + drug + length + timef + toep(0 + timef | subject)"),
                 tmb(long, "bdi ~ bdi.pre + treatment + drug + length + timef + toep(0 + timef | subject)", "subject")),
  btheb_us = c(list(data = "btheb", formula = "bdi ~ bdi.pre + treatment + drug + length + timef + us(0 + timef | subject)",
                    note = "us + residual is a ridge: only -2logLik is identified"),
               tmb(long, "bdi ~ bdi.pre + treatment + drug + length + timef + us(0 + timef | subject)", "subject")),
  sim_toep = c(list(data = "simrm", formula = "y ~ timef + toep(0 + timef | id)"),
               tmb(sim, "y ~ timef + toep(0 + timef | id)", "id")),
  sim_us = c(list(data = "simrm", formula = "y ~ timef + us(0 + timef | id)"),
             tmb(sim, "y ~ timef + us(0 + timef | id)", "id")),
  sim_ar1 = c(list(data = "simrm", formula = "y ~ timef + ar1(0 + timef | id)"),
              tmb(sim, "y ~ timef + ar1(0 + timef | id)", "id")),
  contra_us = c(list(data = "contraception", formula = "use ~ age + urban + us(1 + urban | district)"),
                tmb(contra, "use ~ age + urban + us(1 + urban | district)", "district", family = binomial())),
  contra_diag = c(list(data = "contraception", formula = "use ~ age + urban + diag(1 + urban | district)"),
                  tmb(contra, "use ~ age + urban + diag(1 + urban | district)", "district", family = binomial())),
  contra_cs = c(list(data = "contraception", formula = "use ~ age + urban + cs(1 + urban | district)"),
                tmb(contra, "use ~ age + urban + cs(1 + urban | district)", "district", family = binomial())),
  versions = list(R = R.version.string, glmmTMB = as.character(packageVersion("glmmTMB")),
                  lme4 = as.character(packageVersion("lme4"))))
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, null = "null", pretty = TRUE, matrix = "rowmajor"),
           "tests/data/covstruct_reference.json")
