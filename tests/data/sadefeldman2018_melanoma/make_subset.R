# Step 1 of 2 (run once, needs R with the Matrix package; SeuratObject is not needed): export the Seurat
# object `example_scrnaseq` to plain text.
# Input: data/example_scrnaseq.RData from github.com/SydneyBioX/scFeatures at commit
# 042c610c40b4d6ec0b0d0053550693b5f4e0a7db.
# Usage: Rscript make_subset.R path/to/example_scrnaseq.RData outdir
suppressMessages(library(Matrix))
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
nm <- load(args[1], envir = e)
obj <- get(nm, e)
rna <- attributes(obj)$assays[["RNA"]]
m <- attributes(rna)$data
md <- attributes(obj)$meta.data
dir.create(args[2], showWarnings = FALSE)
writeMM(m, file.path(args[2], "matrix.mtx"))
writeLines(rownames(m), file.path(args[2], "genes.txt"))
write.csv(data.frame(cell = colnames(m), md[colnames(m), c("cellTypes", "patient", "respond", "therapy")]),
          file.path(args[2], "obs.csv"), row.names = FALSE, quote = TRUE)
