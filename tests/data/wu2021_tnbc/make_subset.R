# Step 1 of 2 (run once, needs R with SingleCellExperiment): export the Wu et al. 2021 breast-cancer sample
# CID4465 (SingleCellExperiment `single_cell_data_2`) to plain text.
# Input: data/single_cell_data_2.RData from github.com/omnideconv/spacedeconv, blob
# 124dcf49c3a22f3fb4c2d124159ea330e095b100 (commit faf6a4bccf031129cafde786d3503ce66228fe57).
# Usage: Rscript make_subset.R path/to/single_cell_data_2.RData outdir
suppressMessages({library(Matrix); library(SingleCellExperiment)})
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
nm <- load(args[1], envir = e)
obj <- get(nm[1], e)
m <- assay(obj, "counts")
cd <- as.data.frame(colData(obj))
dir.create(args[2], showWarnings = FALSE)
writeMM(m, file.path(args[2], "matrix.mtx"))
writeLines(rownames(m), file.path(args[2], "genes.txt"))
write.csv(data.frame(cell = colnames(m), cd[colnames(m), c("celltype_major", "celltype_minor", "celltype_subset")]),
          file.path(args[2], "obs.csv"), row.names = FALSE, quote = TRUE)
