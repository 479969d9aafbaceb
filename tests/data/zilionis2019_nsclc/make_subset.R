# Step 1 of 2 (run once, needs R with the Matrix package; Seurat is not needed): export the Seurat
# object `query.seurat` to plain text.
# Input: data/query.seurat.rda from github.com/carmonalab/scGate at commit
# 4b7fdc766d897f462dd03286d4c561ac96caee80.
# Usage: Rscript make_subset.R path/to/query.seurat.rda outdir
suppressMessages(library(Matrix))
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
nm <- load(args[1], envir = e)
obj <- get(nm, e)
m <- attributes(attributes(obj)$assays[["RNA"]])$data
md <- attributes(obj)$meta.data
dir.create(args[2], showWarnings = FALSE)
writeMM(m, file.path(args[2], "matrix.mtx"))
writeLines(rownames(m), file.path(args[2], "genes.txt"))
write.csv(data.frame(cell = colnames(m),
                     md[colnames(m), c("Major.cell.type", "Minor.subset", "Patient", "Tissue")]),
          file.path(args[2], "obs.csv"), row.names = FALSE, quote = TRUE)
