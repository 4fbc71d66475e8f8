# The package's bundled data sets in R, with the factor levels the package uses
# (mixedmodels/datasets/data/factor_levels.json); text columns become factors.
# Source it from the repository root: source("tools/load_data.R")
suppressPackageStartupMessages(library(jsonlite))
ds <- "mixedmodels/datasets/data"
lv <- fromJSON(file.path(ds, "factor_levels.json"), simplifyVector = FALSE)
load_data <- function(name) {
  df <- read.csv(file.path(ds, paste0(name, ".csv")), stringsAsFactors = FALSE, check.names = FALSE)
  for (col in names(lv[[name]])) df[[col]] <- factor(df[[col]], levels = unlist(lv[[name]][[col]]))
  for (col in names(df)) if (is.character(df[[col]])) df[[col]] <- factor(df[[col]])
  df
}
