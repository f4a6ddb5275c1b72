-- Argo CD health of a modelreg ModelPromotion: Healthy when promoted, Suspended while it waits
-- for approvals, Degraded when it failed or was rolled back.
local hs = {}
local function condition(conditions, kind)
  if conditions == nil then return nil end
  for _, c in ipairs(conditions) do
    if c.type == kind then return c end
  end
  return nil
end
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelreg operator"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end
local succeeded = condition(obj.status.conditions, "Succeeded")
if succeeded == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelreg operator"
  return hs
end
hs.message = (succeeded.reason or "") .. ": " .. (succeeded.message or "")
local healthy = {Promoted = true, Superseded = true}
local suspended = {AwaitingApproval = true}
local degraded = {
  CriteriaNotMet = true, ArtifactInvalid = true, ArtifactChanged = true, RolloutFailed = true,
  RolledBack = true, VersionNotFound = true, InvalidPolicy = true, StatusTampered = true, Forbidden = true,
}
if healthy[succeeded.reason] then
  hs.status = "Healthy"
elseif suspended[succeeded.reason] then
  hs.status = "Suspended"
elseif degraded[succeeded.reason] then
  hs.status = "Degraded"
else  -- WaitingForVersion, WaitingForArtifact, Queued, Ready, RollingOut
  hs.status = "Progressing"
end
return hs
