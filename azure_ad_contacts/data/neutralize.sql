-- A copied database must not talk to the customers' tenants: forget tokens, delta state and the
-- client secret, disconnect every integration (reconnecting needs a customer's consent again), stop
-- schedules and "Sync now" requests waiting for the scheduled job.
UPDATE azure_ad_integration
   SET token_cache = NULL,
       consent_nonce = NULL,
       state = CASE WHEN state = 'draft' THEN 'draft' ELSE 'disconnected' END,
       auto_sync = FALSE,
       sync_requested_by = NULL,
       delta_link = NULL,
       delta_scope = NULL,
       delta_rest = NULL;
DELETE FROM azure_ad_directory_user;

DELETE FROM ir_config_parameter
 WHERE key = 'azure_ad_contacts.client_secret';
