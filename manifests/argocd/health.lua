-- Argo CD health check for ferry.rs/KafkaConnector.
--
-- Maps the connector's status, written by the Ferry operator, to an Argo CD health status:
--   Suspended    spec.state Paused or Stopped, and the operator reports that state
--   Degraded     a task failed or backs off, the configuration is invalid, or a task
--                makes no progress while records wait (conditions Degraded / Stalled)
--   Progressing  the operator has not yet acted on the latest spec, or tasks are starting,
--                scaling, being replaced, or an offsets reset is running
--   Healthy      every desired task runs and is ready (condition Ready)
-- The message is the message of the condition that decided.
local hs = {}

local function condition(status, type)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to report the connector's status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to act on generation " .. tostring(generation)
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = message(degraded, "A task failed")
  return hs
end
if status.state == "Failed" then
  hs.status = "Degraded"
  hs.message = message(condition(status, "Ready"), "The connector failed")
  return hs
end

if status.state == "Paused" or status.state == "Stopped" then
  hs.status = "Suspended"
  hs.message = message(condition(status, "Ready"), "The connector is " .. status.state)
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(stalled, "A task makes no progress")
  return hs
end

local progressing = condition(status, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = message(progressing, "Tasks are changing")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" and status.state == "Running" then
  hs.status = "Healthy"
  hs.message = message(ready, "Every task is running")
  return hs
end

hs.status = "Progressing"
hs.message = message(ready, "Tasks are starting")
return hs
