-- GET the URL as given (wrk's pre-built request: the cheapest generator), reporting only.
local qc = dofile(os.getenv("QC_WRK_LIB"))
qc.report()
