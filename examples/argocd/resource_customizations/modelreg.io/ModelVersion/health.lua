-- Argo CD health of a modelreg ModelVersion: Healthy once its bytes are proven.
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
local ready = condition(obj.status.conditions, "Ready")
if ready ~= nil and ready.reason == "DuplicateVersion" then
  hs.status = "Degraded"
  hs.message = ready.message
  return hs
end
local verified = condition(obj.status.conditions, "ArtifactVerified")
if verified == nil then
  hs.status = "Progressing"
  hs.message = "Verifying the artifact"
  return hs
end
hs.message = verified.message
if verified.status == "True" then
  hs.status = "Healthy"
  return hs
end
-- transient: retried by the operator with backoff
local waiting = {Verifying = true, NotFound = true, AccessDenied = true, StorageUnavailable = true, Timeout = true}
if waiting[verified.reason] then
  hs.status = "Progressing"
else  -- ChecksumMismatch, SizeMismatch, ArtifactChanged, InvalidURI, Forbidden, TooLarge
  hs.status = "Degraded"
end
return hs
