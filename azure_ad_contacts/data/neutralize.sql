-- A copied database must not talk to the customers' tenants: forget tokens and delta state, stop schedules
-- and "Sync now" requests waiting for the scheduled job.
UPDATE azure_ad_integration
   SET token_cache = NULL,
       consent_nonce = NULL,
       auto_sync = FALSE,
       sync_requested_by = NULL,
       delta_link = NULL,
       delta_scope = NULL,
       delta_rest = NULL;
DELETE FROM azure_ad_directory_user;
