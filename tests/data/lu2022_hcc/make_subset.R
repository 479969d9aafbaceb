# Step 1 of 2 (run once, needs R with the Matrix package): export the HCC example of gdGSE to plain text.
# Input: inst/extdata/SingleCell_example.RData from github.com/WangX-Lab/gdGSE, blob
# bd3ebeda1698fbd7143c286856c0dd89ac92e26c (added in commit 0911c987d365f5f365e847f7a3b508cedee6294f,
# unchanged at a0b26746e6d70d90723f53f2dae743b7bf217058). It holds SC_exp_matrix (a data.frame of raw UMI
# counts, 5,000 genes x 1,000 cells of GSE149614), SC_condition (CellID, CellType) and SC_Signature (not used).
# Usage: Rscript make_subset.R path/to/SingleCell_example.RData outdir
suppressMessages(library(Matrix))
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
load(args[1], envir = e)
m <- Matrix(as.matrix(e$SC_exp_matrix), sparse = TRUE)
cond <- e$SC_condition
rownames(cond) <- cond$CellID
stopifnot(setequal(colnames(m), cond$CellID))
dir.create(args[2], showWarnings = FALSE)
writeMM(m, file.path(args[2], "matrix.mtx"))
writeLines(rownames(m), file.path(args[2], "genes.txt"))
write.csv(data.frame(cell = colnames(m), cell_type = cond[colnames(m), "CellType"]),
          file.path(args[2], "obs.csv"), row.names = FALSE, quote = TRUE)
