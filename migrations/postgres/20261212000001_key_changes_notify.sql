-- Each web process caches the API keys it authenticated (`web::caller::KeyCache`), so a keyed
-- request costs no read of `api_keys`. A revoked key must still be refused at once by every
-- process: whatever revokes or changes a key (the dashboard, `sentiq keys revoke`, plain SQL)
-- tells them through this notification, sent when the change commits. A touch of
-- `last_used_at` changes nothing a process caches, and notifies nobody.
CREATE FUNCTION sentiq_api_key_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sentiq_keys', OLD.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER api_key_changed AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
       OR OLD.hash IS DISTINCT FROM NEW.hash
       OR OLD.name IS DISTINCT FROM NEW.name
       OR OLD.rate_per_minute IS DISTINCT FROM NEW.rate_per_minute
       OR OLD.max_running IS DISTINCT FROM NEW.max_running)
    EXECUTE FUNCTION sentiq_api_key_changed();

CREATE TRIGGER api_key_deleted AFTER DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION sentiq_api_key_changed();
