-- GET a random line of a paths file (the first script argument) per request:
-- `qc.bench.wrk.run(url, "paths.lua", args=[paths_file])`, e.g. one product per line.
local qc = dofile(os.getenv("QC_WRK_LIB"))
qc.report()
local paths = nil

function init(args)
  paths = qc.paths(args[1])
  math.randomseed(os.time() * 100 + (thread_id or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
