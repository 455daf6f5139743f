-- A copied database must not talk to the customers' tenants: forget tokens, delta state and the
-- app's credentials (client secret, certificate with its private key), disconnect every
-- integration (reconnecting needs a customer's consent again), stop schedules, retries of failed
-- syncs and "Sync now" requests waiting for the scheduled job.
UPDATE azure_ad_integration
   SET token_cache = NULL,
       consent_nonce = NULL,
       consent_waiting_since = NULL,
       first_sync_pending_since = NULL,
       state = CASE WHEN state = 'draft' THEN 'draft' ELSE 'disconnected' END,
       auto_sync = FALSE,
       sync_requested_by = NULL,
       retry_date = NULL,
       failed_runs = 0,
       delta_link = NULL,
       delta_scope = NULL,
       delta_rules = NULL;
DELETE FROM azure_ad_directory_user;
DELETE FROM azure_ad_contact_state;

DELETE FROM ir_config_parameter
 WHERE key IN ('azure_ad_contacts.client_secret', 'azure_ad_contacts.client_certificate');

-- Nor the partner administrator's sign-in (its refresh token reaches every customer of the partner).
UPDATE azure_ad_partner_tenant
   SET token_cache = NULL,
       home_account_id = NULL,
       sign_in_nonce = NULL,
       sign_in_flow = NULL,
       state = CASE WHEN state = 'draft' THEN 'draft' ELSE 'error' END;
