-- Old readers of gmail_token (services that read the table directly during
-- the cut-over) may compare user_id with a TEXT parameter, e.g. a prepared
-- `WHERE user_id = $1` with $1 text, which PostgreSQL refuses for a uuid
-- column ("operator does not exist: uuid = text"). The old service's table
-- may have had a text user_id, which the adoption (src/store/legacy)
-- converts to uuid. These operators keep such queries working.
--
-- The functions are plain SQL and IMMUTABLE, so the planner inlines them:
-- `user_id = $1` becomes `user_id = $1::uuid` and uses the primary key's
-- index. A literal (`user_id = '…'`) still resolves to uuid = uuid. A value
-- that is not a UUID raises an error, as a cast would. Only ever added.
CREATE OR REPLACE FUNCTION gmail_token_uuid_eq_text(uuid, text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT $1 = $2::uuid';
CREATE OR REPLACE FUNCTION gmail_token_text_eq_uuid(text, uuid) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT $1::uuid = $2';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_operator WHERE oprname = '='
                   AND oprleft = 'uuid'::regtype AND oprright = 'text'::regtype) THEN
        CREATE OPERATOR = (LEFTARG = uuid, RIGHTARG = text, FUNCTION = gmail_token_uuid_eq_text,
                           COMMUTATOR = =, RESTRICT = eqsel, JOIN = eqjoinsel);
    END IF;
    -- The commutator exists as a shell now (or was made by hand): fill it.
    IF NOT EXISTS (SELECT 1 FROM pg_operator WHERE oprname = '='
                   AND oprleft = 'text'::regtype AND oprright = 'uuid'::regtype
                   AND oprcode::oid <> 0) THEN
        CREATE OPERATOR = (LEFTARG = text, RIGHTARG = uuid, FUNCTION = gmail_token_text_eq_uuid,
                           COMMUTATOR = =, RESTRICT = eqsel, JOIN = eqjoinsel);
    END IF;
END
$$;
