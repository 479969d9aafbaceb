# Step 1 of 2 (run once, needs R with SingleCellExperiment): export the He et al. 2020 adult liver
# SingleCellExperiment `sample_sce_obj` to plain text.
# Input: data/sample_sce_obj.rda from github.com/stemangiola/CuratedAtlasQueryR, blob
# 414a7eb3dd16f0fd72625e5cb7c06c1d3a7c4d07 (commit 923de59b479480366da2b0f08fe997cf9f0156ce).
# Usage: Rscript make_subset.R path/to/sample_sce_obj.rda outdir
suppressMessages({library(Matrix); library(SingleCellExperiment)})
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
nm <- load(args[1], envir = e)
obj <- get(nm, e)
m <- assay(obj, "X")
cd <- as.data.frame(colData(obj))
dir.create(args[2], showWarnings = FALSE)
writeMM(m, file.path(args[2], "matrix.mtx"))
writeLines(rownames(m), file.path(args[2], "genes.txt"))
write.csv(data.frame(cell = colnames(m),
                     cd[colnames(m), c("Cell_type_in_each_tissue", "Cell_type_in_merged_data", "reclustered.broad",
                                       "reclustered.fine", "nCount_RNA", "nFeature_RNA")]),
          file.path(args[2], "obs.csv"), row.names = FALSE, quote = TRUE)
