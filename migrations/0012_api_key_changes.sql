-- Every change to a key (revoked, un-revoked, scopes, deleted), whoever makes it (the
-- CLI, the console, plain SQL), is announced on the `jetpost_api_keys` channel with the
-- key's id, so API processes drop the key from their lookup cache at once instead of
-- honouring a revoked key until their cache entry expires.
CREATE FUNCTION jetpost_api_key_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('jetpost_api_keys', OLD.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER api_key_changed
    AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION jetpost_api_key_changed();
