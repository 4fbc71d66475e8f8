# Time lme4 fits listed in a job file, for benchmarks/run.py and benchmarks/scale.py.
#
# Usage: Rscript lme4_fits.R JOBS.tsv OUT.tsv
#
# JOBS.tsv columns: name, csv, levels, formula, kind (lmm|glmm), reml (TRUE|FALSE),
# family, nagq, reps.  `levels` is a two-column TSV (column, level) giving the factor
# levels in R's order, or "-" to turn every text column into a factor.
# Each job gets one untimed fit first (it warms up the code path and counts the
# objective evaluations), then `reps` timed fits of the whole lmer/glmer call.

suppressPackageStartupMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
jobs <- read.delim(args[1], colClasses = "character", quote = "")

# ---- data -------------------------------------------------------------------------
read_levels <- function(path) {
  if (path == "-") return(NULL)
  lv <- read.delim(path, colClasses = "character", quote = "", na.strings = character(0))
  split(lv$level, factor(lv$column, levels = unique(lv$column)))
}

load_data <- function(csv, levels_path) {
  levels <- read_levels(levels_path)
  classes <- if (is.null(levels)) NA else setNames(rep("character", length(levels)), names(levels))
  df <- read.csv(csv, colClasses = classes, check.names = FALSE)
  if (is.null(levels)) {
    # scale series: every text column is a grouping factor
    for (col in names(df)[vapply(df, is.character, TRUE)]) df[[col]] <- factor(df[[col]])
    return(df)
  }
  for (col in intersect(names(levels), names(df))) df[[col]] <- factor(df[[col]], levels = levels[[col]])
  df
}

data_cache <- new.env()
get_data <- function(csv, levels_path) {
  key <- paste(csv, levels_path)
  if (!exists(key, envir = data_cache)) assign(key, load_data(csv, levels_path), envir = data_cache)
  get(key, envir = data_cache)
}

# ---- fitting ------------------------------------------------------------------------
fit_job <- function(job, df) {
  f <- as.formula(job$formula)
  if (job$kind == "lmm") return(lmer(f, data = df, REML = as.logical(job$reml)))
  fam <- get(job$family, mode = "function")
  glmer(f, data = df, family = fam, nAGQ = as.integer(job$nagq))
}

# glmer's optinfo reports only its last optimisation stage; tracing optimizeGlmer
# records the evaluations of every stage (stage 1: θ by BOBYQA; stage 2: θ and β).
stage_counts <- new.env()
trace_stages <- function(on) {
  if (!on) return(invisible(suppressMessages(untrace("optimizeGlmer", where = asNamespace("lme4")))))
  expr <- quote(assign("v", c(get("v", envir = stage_counts), returnValue()$feval), envir = stage_counts))
  invisible(suppressMessages(trace("optimizeGlmer", exit = expr, print = FALSE, where = asNamespace("lme4"))))
}

count_fit <- function(job, df) {
  assign("v", integer(0), envir = stage_counts)
  if (job$kind == "glmm") trace_stages(TRUE)
  m <- fit_job(job, df)
  if (job$kind == "glmm") trace_stages(FALSE)
  stages <- if (job$kind == "glmm") get("v", envir = stage_counts) else m@optinfo$feval
  list(model = m, stages = stages)
}

time_fit <- function(job, df) {
  t0 <- proc.time()[["elapsed"]]
  fit_job(job, df)
  proc.time()[["elapsed"]] - t0
}

run_job <- function(job) {
  df <- get_data(job$csv, job$levels)
  counted <- count_fit(job, df)
  times <- vapply(seq_len(as.integer(job$reps)), function(i) time_fit(job, df), 0.0)
  m <- counted$model
  data.frame(
    name = job$name, median_s = median(times), min_s = min(times), reps = length(times),
    times = paste(format(times, digits = 6), collapse = ";"),
    feval_stages = paste(counted$stages, collapse = ";"),
    feval_reported = m@optinfo$feval, objective = -2 * as.numeric(logLik(m)),
    status = "ok", stringsAsFactors = FALSE
  )
}

# A job lme4 refuses is reported (status = its message), not fatal for the others.
failed_row <- function(job, err) {
  data.frame(
    name = job$name, median_s = NA, min_s = NA, reps = 0, times = "", feval_stages = "",
    feval_reported = NA, objective = NA, status = gsub("[\t\n]", " ", conditionMessage(err)),
    stringsAsFactors = FALSE
  )
}

rows <- lapply(seq_len(nrow(jobs)), function(i) {
  job <- as.list(jobs[i, ])
  message(sprintf("lme4: %s", job$name))
  tryCatch(run_job(job), error = function(err) failed_row(job, err))
})
write.table(do.call(rbind, rows), args[2], sep = "\t", quote = FALSE, row.names = FALSE)
