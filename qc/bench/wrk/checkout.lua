-- A complete order per flow: start a cart, hold `lines` SKUs (one PUT each), check out
-- with a fresh Idempotency-Key (the simulated provider pays: CONFIRMED; a 503 is retried
-- with the same key). One connection per thread (run with per_connection_state): the
-- flow's state lives in this thread.
-- args: 1 tokens file (one bearer token per line), 2 SKUs file, 3 store id, 4 lines
local qc = dofile(os.getenv("QC_WRK_LIB"))
qc.report()

local token, skus, store, lines
local step, cart, picked, key = 0, nil, 0, nil
local checkout_body = '{"address":{"line1":"bench","lat":12.9352,"lng":77.6245},' ..
  '"payment_method":"upi"}'

init = function(args)
  local tokens = qc.paths(args[1])
  token = tokens[((thread_id or 1) - 1) % #tokens + 1]
  skus = qc.paths(args[2])
  store = args[3]
  lines = tonumber(args[4] or "3")
  math.randomseed(os.time() + (thread_id or 1) * 7919)
end

-- what a failed step was: the step, the status and the problem's code
local function failed(what, status, body)
  qc.fail(what .. " " .. status .. " " .. (qc.field(body, "code") or ""))
end

local function headers(extra)
  local h = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  if extra then for k, v in pairs(extra) do h[k] = v end end
  return h
end

request = function()
  if step == 0 then
    return wrk.format("POST", "/v1/carts", headers(), '{"store_id":"' .. store .. '"}')
  elseif step == 1 then
    local sku = skus[math.random(#skus)]
    return wrk.format("PUT", "/v1/carts/" .. cart .. "/lines/" .. sku, headers(),
      '{"quantity":' .. math.random(1, 2) .. '}')
  end
  return wrk.format("POST", "/v1/carts/" .. cart .. "/checkout",
    headers({ ["Idempotency-Key"] = key }), checkout_body)
end

response = function(status, _, body)
  if step == 0 then
    cart = qc.field(body, "cart_id")
    if status == 201 and cart then step, picked = 1, 0 else failed("cart", status, body) end
  elseif step == 1 then
    -- a line refused: the flow goes on without it
    if status ~= 200 then failed("line", status, body) end
    picked = picked + 1
    if picked >= lines then step, key = 2, qc.uuid() end
  else
    if status == 201 and qc.field(body, "status") == "CONFIRMED" then qc.flow_done()
    else failed("checkout", status, body) end
    -- a 503 (a store being reloaded) may follow a charge: retried with the same key, as
    -- a customer's app would, it resumes that order
    if status ~= 503 then step = 0 end
  end
end
