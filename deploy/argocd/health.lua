-- Argo CD health check for phalanx.dev/ReplicatedStore, a store run by the Phalanx operator.
-- Argo CD runs it with the store as the global `obj` and reads the table it returns. Install it as
-- the key resource.customizations.health.phalanx.dev_ReplicatedStore of argocd-cm (argocd-cm.yaml
-- beside this file carries it ready to merge). Read top to bottom: the first rule that matches wins.
--   Progressing  Phalanx has not written status for this generation of the spec yet.
--   Degraded     Stalled=True: what a person must fix (an invalid spec, a halted rollout, a name
--                another object holds, writes the API server refuses, members that never started).
--   Suspended    spec.paused is true: Phalanx only reports status.
--   Degraded     Degraded=True because a member that served is unavailable and no replacement is
--                on its way (a crash loop, a node down within memberFailureGrace).
--   Suspended    a rollout held by updates.paused or the phalanx.dev/rollout-paused annotation.
--   Progressing  a lost member's replacement is on its way (Degraded=True, reason Recovering), or
--                Reconciling=True: members created, scaled, healed or rolled out.
--   Healthy      Ready=True.
--   Progressing  anything else (Ready=False while nothing is stalled: members still starting).
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function holds(c)
  return c ~= nil and c.status == "True"
end

local function says(c, otherwise)
  if c == nil then
    return otherwise
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if message ~= "" then
    return message
  end
  if reason ~= "" then
    return reason
  end
  return otherwise
end

local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Phalanx to report on the store"
  return hs
end
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for Phalanx to observe generation " .. tostring(generation)
    .. " (status is of generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local stalled = condition(status, "Stalled")
if holds(stalled) then
  hs.status = "Degraded"
  hs.message = says(stalled, "Stalled")
  return hs
end

local degraded = condition(status, "Degraded")
if (obj.spec ~= nil and obj.spec.paused == true) or status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "spec.paused is true: Phalanx reports status only"
  if holds(degraded) then
    hs.message = hs.message .. "; " .. says(degraded, "Degraded")
  end
  return hs
end

if holds(degraded) and degraded.reason ~= "Recovering" then
  hs.status = "Degraded"
  hs.message = says(degraded, "Degraded")
  return hs
end

local reconciling = condition(status, "Reconciling")
if status.rollout ~= nil and status.rollout.paused == true then
  hs.status = "Suspended"
  hs.message = "Rollout paused (updates.paused or the phalanx.dev/rollout-paused annotation): "
    .. says(reconciling, "the next step waits")
  return hs
end

if holds(degraded) then
  hs.status = "Progressing"
  hs.message = says(degraded, "Recovering")
  return hs
end
if holds(reconciling) then
  hs.status = "Progressing"
  hs.message = says(reconciling, "Reconciling")
  return hs
end

local ready = condition(status, "Ready")
if holds(ready) then
  hs.status = "Healthy"
  hs.message = says(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = says(ready, "Waiting for the store to be Ready")
return hs
