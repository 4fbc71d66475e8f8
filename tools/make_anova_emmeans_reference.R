# References for F tests (anova types I-III), estimated marginal means, pairwise
# comparisons, trends and contrasts of fitted mixed models.
#   lmerTest::anova (Satterthwaite and Kenward-Roger), emmeans::emmeans / emtrends / pairs,
#   car::Anova (type II and III Wald chi-square for a GLMM).
# Run from the repository root:  Rscript tools/make_anova_emmeans_reference.R
# Writes tests/data/anova_emmeans_reference.json and the data it uses
# (tests/data/anova_emmeans_fhch2010.csv.gz: afex's fhch2010, correct trials).
suppressPackageStartupMessages({
  library(lme4); library(lmerTest); library(emmeans); library(car); library(afex); library(jsonlite)
})
options(contrasts = c("contr.sum", "contr.poly"))
emm_options(lmer.df = "satterthwaite", lmerTest.limit = 1e6, pbkrtest.limit = 1e6)
ds <- "mixedmodels/datasets/data"
alpha <- function(x) factor(as.character(x))  # levels in sorted order, as pandas categoricals

# ---- data -----------------------------------------------------------------------------------
data("fhch2010", package = "afex")
fhch <- droplevels(fhch2010[fhch2010$correct, ])
fhch <- data.frame(id = alpha(fhch$id), item = alpha(fhch$item), task = alpha(fhch$task),
                   stimulus = alpha(fhch$stimulus), density = alpha(fhch$density),
                   frequency = alpha(fhch$frequency), log_rt = fhch$log_rt)
fhch$task_c <- ifelse(fhch$task == "lexdec", 0.5, -0.5)
fhch$stim_c <- ifelse(fhch$stimulus == "word", 0.5, -0.5)
fhch$dens_c <- ifelse(fhch$density == "high", 0.5, -0.5)
fhch$freq_c <- ifelse(fhch$frequency == "high", 0.5, -0.5)
con <- gzfile("tests/data/anova_emmeans_fhch2010.csv.gz", "w")
write.csv(fhch, con, row.names = FALSE); close(con)
# the small crossed design of the tests: 30 items, every subject (pbkrtest forms n x n matrices)
items <- levels(fhch$item)[seq(1, 600, by = 20)]
small <- droplevels(fhch[fhch$item %in% items, ])

oats <- read.csv(file.path(ds, "oats.csv"), stringsAsFactors = TRUE)
oats$Variety <- alpha(oats$Variety); oats$Block <- alpha(oats$Block)
set.seed(14)
unbal <- oats[-sample(nrow(oats), 12), ]
unbal$nf <- alpha(unbal$nitro)
cbpp <- read.csv(file.path(ds, "cbpp.csv")); cbpp$period <- alpha(cbpp$period); cbpp$herd <- alpha(cbpp$herd)

# ---- helpers --------------------------------------------------------------------------------
estimates <- function(m) list(theta = unname(getME(m, "theta")), beta = unname(fixef(m)),
                              objective = -2 * as.numeric(logLik(m)))
atable <- function(a) list(term = rownames(a), F = unname(a[["F value"]]), NumDF = unname(a$NumDF),
                           DenDF = unname(a$DenDF), p = unname(a[["Pr(>F)"]]))
etable <- function(e) { s <- as.data.frame(summary(e)); as.list(s) }
ptable <- function(p) { s <- as.data.frame(summary(p)); as.list(s) }

lmm_case <- function(f, data, dataname, emm = list(), trends = list(), kr = TRUE, types = c(1, 2, 3)) {
  message(f, " ", Sys.time()); m <- lmer(as.formula(f), data, REML = TRUE, control = lmerControl(optimizer = "bobyqa"))
  out <- list(formula = f, data = dataname, nobs = nobs(m), fit = estimates(m), coefnames = names(fixef(m)))
  for (t in types) out[[paste0("anova", t)]] <- atable(anova(m, type = t))
  if (kr) out$anova3_kr <- atable(anova(m, type = 3, ddf = "Kenward-Roger"))
  # type III as the test of each term's sum-coded coefficients (lmerTest's contestMD on rows
  # of the identity): lmerTest's own type III L passes through zapsmall (7 digits)
  asgn <- attr(model.matrix(m), "assign"); labs <- attr(terms(m), "term.labels")
  out$anova3_coefficients <- atable(do.call(rbind, lapply(seq_along(labs), function(i) {
    L <- diag(length(asgn))[asgn == i, , drop = FALSE]
    r <- contestMD(m, L); rownames(r) <- labs[i]; r })))
  out$emmeans <- lapply(emm, function(e) {
    spec <- as.formula(paste("~", e$specs, if (!is.null(e$by)) paste("|", e$by) else ""))
    r <- list(specs = e$specs, by = e$by, satterthwaite = etable(emmeans(m, spec)))
    g <- emmeans(m, spec)
    r$pairs <- lapply(c("tukey", "holm", "bonferroni", "sidak", "none"), function(a) c(list(adjust = a), ptable(pairs(g, adjust = a))))
    if (kr) r$kenward_roger <- etable(emmeans(m, spec, lmer.df = "kenward-roger"))
    r
  })
  out$emtrends <- lapply(trends, function(e) {
    g <- emtrends(m, as.formula(paste("~", e$specs)), var = e$var)
    list(specs = e$specs, var = e$var, table = etable(g), pairs = ptable(pairs(g, adjust = "tukey")))
  })
  out
}

cases <- list(
  crossed = lmm_case("log_rt ~ task * stimulus + (1 + stimulus | id) + (1 + task | item)", small, "fhch2010_small",
                     emm = list(list(specs = "stimulus", by = "task"), list(specs = "task"), list(specs = "task:stimulus"))),
  splitplot = lmm_case("yield ~ nitro * Variety + (1 | Block/Variety)", oats, "oats",
                       emm = list(list(specs = "Variety")), trends = list(list(specs = "Variety", var = "nitro"))),
  unbalanced = lmm_case("yield ~ nf * Variety + (1 | Block)", unbal, "oats_unbalanced",
                        emm = list(list(specs = "nf"), list(specs = "Variety", by = "nf")))
)
# a missing cell: the nf x Variety table loses one combination (types I and II only)
miss <- unbal[!(unbal$Variety == "Victory" & unbal$nf == "0.6"), ]
mm_ <- lmer(yield ~ nf * Variety + (1 | Block), miss, REML = TRUE)
cases$missing_cell <- list(formula = "yield ~ nf * Variety + (1 | Block)", data = "oats_missing_cell",
                           nobs = nobs(mm_), fit = estimates(mm_), coefnames = names(fixef(mm_)),
                           anova1 = atable(anova(mm_, type = 1)), anova2 = atable(anova(mm_, type = 2)))
# the rows dropped, so that Python builds the same data
unbal_rows <- as.integer(rownames(unbal))

# GLMM: Wald chi-square tests as car::Anova
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
# lme4's vcov() of a GLMM comes from a finite-difference Hessian of the deviance in (θ, β);
# the tests use the vcov from the penalised least-squares fit (use.hessian = FALSE), which is ours
Vg <- vcov(g, use.hessian = FALSE)
a3 <- car::Anova(g, type = 3, vcov. = Vg); a2 <- car::Anova(g, type = 2, vcov. = Vg)
glmm <- list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", data = "cbpp",
             fit = estimates(g),
             anova3 = list(term = rownames(a3), Chisq = a3$Chisq, Df = a3$Df, p = a3[["Pr(>Chisq)"]]),
             anova2 = list(term = rownames(a2), Chisq = a2$Chisq, Df = a2$Df, p = a2[["Pr(>Chisq)"]]),
             emmeans = etable(emmeans(g, ~period, vcov. = Vg)),
             emmeans_response = etable(emmeans(g, ~period, type = "response", vcov. = Vg)))

out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest")), emmeans = as.character(packageVersion("emmeans")),
                  pbkrtest = as.character(packageVersion("pbkrtest")), car = as.character(packageVersion("car"))),
  small_items = items, unbalanced_rows = unbal_rows, lmm = cases, glmm = glmm)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null"), "tests/data/anova_emmeans_reference.json")
