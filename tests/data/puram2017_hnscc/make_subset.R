# Step 1 of 2 (run once, needs R with SingleCellExperiment): export CHETAH's headneck_ref to plain text.
# Input: data/headneck_ref.rda from github.com/jdekanter/CHETAH at commit c19cba2906b44b3c56c9d8ad3b23f1fdf54b98e1.
# Usage: Rscript make_subset.R path/to/headneck_ref.rda outdir
suppressMessages(library(SingleCellExperiment))
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
nm <- load(args[1], envir = e)
sce <- updateObject(get(nm, e))
m <- as.matrix(assay(sce, "counts"))
dir.create(args[2], showWarnings = FALSE)
write.csv(m, gzfile(file.path(args[2], "expr.csv.gz")), quote = TRUE)
write.csv(data.frame(cell = colnames(sce), cell_type = colData(sce)$celltypes),
          file.path(args[2], "obs.csv"), row.names = FALSE, quote = TRUE)
