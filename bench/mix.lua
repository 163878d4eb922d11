-- The webhook load for wrk, driven by bench/ingest.py (which sets the BENCH_* variables).
--
-- New deliveries are drawn from BENCH_MIX, the percentages of lemlist
-- activities, Postmark Delivery/Open/Click records and PhantomBuster Auto
-- Connect runs with 5 rows inline ("60,30,10": the spread shape; "100,0,0":
-- the hot campaign launch); on top of them, 10% of requests redeliver the
-- exact bytes of a recently sent one. Every new delivery carries a unique
-- token made of the run, the wrk thread and a per-thread counter, in
-- lemlist's `_id`, Postmark's `MessageID` and PhantomBuster's `containerId`,
-- so that bench/verify.py can check the database delivery by delivery.
-- Contacts are drawn at random from BENCH_CONTACTS people; contact c belongs
-- to instance c % BENCH_INSTANCES (1 instance: every lead enrolls in the hot
-- campaign as it first appears).
--
-- Per thread it counts the new deliveries per provider and the answers, and
-- keeps "delivery_id status events" of every 200; done() writes them to
-- BENCH_OUT/summary.json and BENCH_OUT/acks.txt.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

local RECENT = 64 -- redeliveries pick among this many recently sent requests
local BASE_TIME = 1735689600 -- 2025-01-01T00:00:00Z; each run has its own ten-million-second span

local run, instances, contacts, paths, epoch, lemlist_pct, postmark_pct
local counter = 0
local recent, recent_next = {}, 1
generated = { lemlist = 0, postmark = 0, phantombuster = 0 }
answers = { redelivered = 0, processed = 0, unmatched = 0, duplicate = 0, other200 = 0, events = 0 }
codes = {}
acks = {}

local LEMLIST_TYPES = {
   -- type, weight (percent), step
   { "emailsSent", 35, 1 }, { "emailsOpened", 25, 1 }, { "emailsClicked", 8, 1 },
   { "emailsReplied", 4, 2 }, { "linkedinVisitDone", 10, 2 }, { "linkedinInviteDone", 10, 3 },
   { "linkedinInviteAccepted", 4, 3 }, { "linkedinSent", 4, 4 },
}
local POSTMARK_TYPES = { { "Delivery", 50 }, { "Open", 35 }, { "Click", 15 } }

local function pick(choices)
   local r = math.random(100)
   for _, choice in ipairs(choices) do
      r = r - choice[2]
      if r <= 0 then return choice end
   end
   return choices[#choices]
end

local function iso(seconds, millis)
   return os.date("!%Y-%m-%dT%H:%M:%S", seconds) .. string.format(".%03dZ", millis)
end

local function lemlist_body(tok, n, contact, instance)
   local kind = pick(LEMLIST_TYPES)
   return string.format(
      '{"_id":"act_%s","type":"%s","isFirst":false,"teamId":"tea_Zq8Lm3NbVx7RtK2pW",' ..
      '"createdAt":"%s","sendUserId":"usr_Hk4Tn9QwE2aLp7XcB",' ..
      '"sendUserEmail":"alex.rivera@outreach.acme-example.com","sendUserName":"Alex Rivera",' ..
      '"leadId":"lea_bench%d","leadFirstName":"Dana","leadLastName":"Whitfield",' ..
      '"leadEmail":"lead%d@northwind-example.com",' ..
      '"linkedinUrl":"https://www.linkedin.com/in/lead-%d-example","campaignId":"cam_bench_%d",' ..
      '"campaignName":"Q1 Outbound - Ops Leaders (email + LinkedIn)",' ..
      '"sequenceId":"seq_Fj3Hs8KdQ1zN6yVbM","sequenceStep":%d,"stepId":"stp_Lk7Qw2Nz5Xc8Vb3Md",' ..
      '"emailTemplateId":"etp_Vq6Zr1Mx8Kt3Wn5Ja","emailTemplateName":"Ops leaders - intro",' ..
      '"emailId":"eml_Xm2Lq7Tb4Rv9Ns1Hk","sequenceTested":"A","stepTested":"A",' ..
      '"subject":"Quick question about Northwind\'s fulfilment ops"}',
      tok, kind[1], iso(epoch + n, tid), contact, contact, contact, instance, kind[3])
end

local GEO = '"UserAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 ' ..
   '(KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36","OS":{"Name":"Windows 10",' ..
   '"Family":"Windows","Company":"Microsoft Corporation"},"Client":{"Name":"Chrome 122.0.0.0",' ..
   '"Family":"Chrome","Company":"Google"},"Geo":{"IP":"203.0.113.57","City":"Portland",' ..
   '"Country":"United States","CountryISOCode":"US","Region":"Oregon","RegionISOCode":"OR",' ..
   '"Zip":"97205","Coords":"45.5202,-122.6742"}'

local function postmark_body(message_id, n, contact, instance)
   local kind = pick(POSTMARK_TYPES)[1]
   local head = string.format(
      '{"RecordType":"%s","MessageStream":"outbound","MessageID":"%s",' ..
      '"Recipient":"lead%d@northwind-example.com","Tag":"bench-%d",' ..
      '"Metadata":{"campaign_id":"cmp_q1_outbound","step":"2"},',
      kind, message_id, contact, instance)
   local at = iso(epoch + n, tid)
   if kind == "Delivery" then
      return head .. string.format(
         '"ServerID":4271093,"DeliveredAt":"%s","Details":"smtp;250 2.0.0 OK  1741616551 ' ..
         'd75a77b69052e-4c1f0a2b3c4d - gsmtp"}', at)
   elseif kind == "Open" then
      return head .. string.format(
         '"FirstOpen":true,"ReceivedAt":"%s","Platform":"WebMail","ReadSeconds":12,%s}', at, GEO)
   end
   return head .. string.format(
      '"ReceivedAt":"%s","Platform":"Desktop","ClickLocation":"HTML",' ..
      '"OriginalLink":"https://www.acme-example.com/case-studies/northwind?utm_source=outbound",%s}',
      at, GEO)
end

local function phantombuster_body(container_id, n, contact, instance)
   local rows = {}
   for row = 0, 4 do
      -- Five contacts of the same instance; one invitation was already pending.
      local c = (contact + row * instances - 1) % contacts + 1
      local url = string.format("https://www.linkedin.com/in/lead-%d-example/", c)
      local err = row == 4 and [[,\"error\":\"Invitation already sent\"]] or ""
      rows[#rows + 1] = string.format(
         [[{\"linkedinProfileUrl\":\"%s\",\"profileUrl\":\"%s\",\"firstName\":\"Lead\",]] ..
         [[\"message\":\"Hi, I work with operations leaders on fulfilment throughput and would ]] ..
         [[love to connect. - Alex\"%s,\"timestamp\":\"%s\"}]],
         url, url, err, iso(epoch + n, tid * 5 + row))
   end
   return string.format(
      '{"agentId":"%d","agentName":"Acme - LinkedIn Auto Connect","containerId":"%s",' ..
      '"script":"LinkedIn Auto Connect.js","scriptOrg":"phantombuster","branch":"master",' ..
      '"launchDuration":3190,"runDuration":214873,"exitCode":0,"exitMessage":"finished",' ..
      '"resultObject":"[%s]"}',
      7318204659000000 + instance, container_id, table.concat(rows, ","))
end

function init(args)
   run = tonumber(os.getenv("BENCH_RUN"))
   instances = tonumber(os.getenv("BENCH_INSTANCES"))
   contacts = tonumber(os.getenv("BENCH_CONTACTS"))
   paths = {}
   for _, provider in ipairs({ "lemlist", "postmark", "phantombuster" }) do
      paths[provider] = "/webhooks/" .. provider .. "?token=" ..
         os.getenv("BENCH_SECRET_" .. string.upper(provider))
   end
   epoch = BASE_TIME + (run % 100) * 10000000
   local l, p = string.match(os.getenv("BENCH_MIX") or "60,30,10", "^(%d+),(%d+),%d+$")
   lemlist_pct, postmark_pct = tonumber(l), tonumber(l) + tonumber(p)
   math.randomseed(run * 1000 + tid)
end

local HEADERS = { ["Content-Type"] = "application/json", ["User-Agent"] = "bench-mix" }

function request()
   if recent[1] ~= nil and math.random(100) <= 10 then
      answers.redelivered = answers.redelivered + 1
      return recent[math.random(#recent)]
   end
   counter = counter + 1
   local n = counter
   local contact = math.random(contacts)
   local instance = contact % instances
   local r = math.random(100)
   local provider, body
   if r <= lemlist_pct then
      provider = "lemlist"
      body = lemlist_body(string.format("%04d%04d%09d", run, tid, n), n, contact, instance)
   elseif r <= postmark_pct then
      provider = "postmark"
      body = postmark_body(string.format("%08d-%04d-4000-a000-%012d", run, tid, n),
         n, contact, instance)
   else
      provider = "phantombuster"
      body = phantombuster_body(string.format("%04d%04d%09d", run, tid, n), n, contact, instance)
   end
   generated[provider] = generated[provider] + 1
   local req = wrk.format("POST", paths[provider], HEADERS, body)
   recent[recent_next] = req
   recent_next = recent_next % RECENT + 1
   return req
end

function response(status, headers, body)
   if status ~= 200 then
      codes[status] = (codes[status] or 0) + 1
      return
   end
   local id = string.match(body, '"delivery_id":"([^"]+)"')
   local state = string.match(body, '"status":"(%a+)"')
   local events = tonumber(string.match(body, '"events":(%d+)')) or 0
   if answers[state] ~= nil and state ~= "redelivered" and state ~= "events" then
      answers[state] = answers[state] + 1
   else
      answers.other200 = answers.other200 + 1
   end
   answers.events = answers.events + events
   acks[#acks + 1] = string.format("%s %s %d", id or "-", state or "-", events)
end

local function json(value)
   if type(value) == "table" then
      local parts = {}
      for k, v in pairs(value) do
         parts[#parts + 1] = string.format("%q:%s", tostring(k), json(v))
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif type(value) == "string" then
      return string.format("%q", value)
   end
   return string.format("%.17g", value)
end

function done(summary, latency, requests)
   local out = os.getenv("BENCH_OUT")
   local per_thread = {}
   local ack_file = io.open(out .. "/acks.txt", "w")
   for i, thread in ipairs(threads) do
      per_thread[tostring(i)] = {
         generated = thread:get("generated"),
         answers = thread:get("answers"),
         codes = thread:get("codes"),
      }
      local lines = thread:get("acks")
      if #lines > 0 then
         ack_file:write(table.concat(lines, "\n"), "\n")
      end
   end
   ack_file:close()
   local percentiles = {}
   for _, p in ipairs({ 50, 90, 99, 99.9 }) do
      percentiles[tostring(p)] = latency:percentile(p)
   end
   local file = io.open(out .. "/summary.json", "w")
   file:write(json({
      run = run,
      threads = per_thread,
      duration_us = summary.duration,
      requests = summary.requests,
      bytes = summary.bytes,
      errors = summary.errors,
      latency_us = { percentiles = percentiles, max = latency.max, mean = latency.mean },
   }))
   file:close()
end
