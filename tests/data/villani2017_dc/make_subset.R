# Step 1 of 2 (run once, needs R with the Matrix package): export the human blood dendritic-cell data of SCIBER.
# Input: data/HumanDC.rda from github.com/RavenGan/SCIBER, blob 10831dc80959454a4aa35d0640c116e6ab2296f1 (added in
# commit 61ab7ddd15236d8e43af08fc2964559624fb14d1, unchanged at 372e4117a554031a8b7fc21afe6ae2fb38294d92). It holds
# HumanDC = list(exp = two genes x cells matrices (Batch1, Batch2; the same 859 genes), metadata = two data frames
# with cell_id, cell_type and dataset).
# Usage: Rscript make_subset.R path/to/HumanDC.rda outdir
suppressMessages(library(Matrix))
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
load(args[1], envir = e)
dc <- e$HumanDC
stopifnot(identical(rownames(dc$exp[[1]]), rownames(dc$exp[[2]])))
m <- Matrix(cbind(dc$exp[[1]], dc$exp[[2]]), sparse = TRUE)
meta <- rbind(dc$metadata[[1]], dc$metadata[[2]])
stopifnot(identical(colnames(m), rownames(meta)))
dir.create(args[2], showWarnings = FALSE)
writeMM(m, file.path(args[2], "matrix.mtx"))
writeLines(rownames(m), file.path(args[2], "genes.txt"))
write.csv(data.frame(cell = colnames(m), cell_type = meta$cell_type, batch = meta$dataset),
          file.path(args[2], "obs.csv"), row.names = FALSE, quote = TRUE)
