# Step 1 of 2 (run once, needs R with the Matrix package; the SingleCellExperiment is read through its
# attributes, so Bioconductor is not needed): export muscat's `example_sce` to plain text.
# Input: data/example_sce.rda from github.com/HelenaLC/muscat at commit 017b290b414212c357e184d17edcca27f4302ace.
# Usage: Rscript make_subset.R path/to/example_sce.rda outdir
suppressMessages(library(Matrix))
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
nm <- load(args[1], envir = e)
a <- attributes(get(nm, e))
m <- attributes(attributes(a$assays)$data)$listData[["logcounts"]]
cd <- attributes(a$colData)
dir.create(args[2], showWarnings = FALSE)
writeMM(m, file.path(args[2], "matrix.mtx"))
writeLines(rownames(m), file.path(args[2], "genes.txt"))
write.csv(data.frame(cell = colnames(m), cluster = cd$listData$cluster_id, sample = cd$listData$sample_id,
                     group = cd$listData$group_id),
          file.path(args[2], "obs.csv"), row.names = FALSE, quote = TRUE)
