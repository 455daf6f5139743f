-- A copied database must not talk to the customers' tenants: forget tokens, stop schedules.
UPDATE azure_ad_integration
   SET token_cache = NULL,
       consent_nonce = NULL,
       auto_sync = FALSE;
