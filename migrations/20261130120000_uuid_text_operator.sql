-- Old readers of gmail_token (services that read the table directly during
-- the cut-over) may compare user_id with a TEXT parameter, e.g. a prepared
-- `WHERE user_id = $1` with $1 text, which PostgreSQL refuses for a uuid
-- column ("operator does not exist: uuid = text"). The old service's table
-- may have had a text user_id, which the adoption (src/store/legacy)
-- converts to uuid. These operators keep such queries working: `=` and `<>`,
-- either way round (each the other's negator, so `NOT (user_id = $1)` is
-- planned as `user_id <> $1`).
--
-- The functions are plain SQL and IMMUTABLE, so the planner inlines them:
-- `user_id = $1` becomes `user_id = $1::uuid` and uses the primary key's
-- index. A literal (`user_id = '…'`) still resolves to uuid = uuid. A value
-- that is not a UUID raises an error, as a cast would. Only ever added.
CREATE OR REPLACE FUNCTION gmail_token_uuid_eq_text(uuid, text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT $1 = $2::uuid';
CREATE OR REPLACE FUNCTION gmail_token_text_eq_uuid(text, uuid) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT $1::uuid = $2';
CREATE OR REPLACE FUNCTION gmail_token_uuid_ne_text(uuid, text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT $1 <> $2::uuid';
CREATE OR REPLACE FUNCTION gmail_token_text_ne_uuid(text, uuid) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT $1::uuid <> $2';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_operator WHERE oprname = '='
                   AND oprleft = 'uuid'::regtype AND oprright = 'text'::regtype) THEN
        CREATE OPERATOR = (LEFTARG = uuid, RIGHTARG = text, FUNCTION = gmail_token_uuid_eq_text,
                           COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
    END IF;
    -- The commutator and the negator exist as shells now (or were made by
    -- hand): fill them.
    IF NOT EXISTS (SELECT 1 FROM pg_operator WHERE oprname = '='
                   AND oprleft = 'text'::regtype AND oprright = 'uuid'::regtype
                   AND oprcode::oid <> 0) THEN
        CREATE OPERATOR = (LEFTARG = text, RIGHTARG = uuid, FUNCTION = gmail_token_text_eq_uuid,
                           COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_operator WHERE oprname = '<>'
                   AND oprleft = 'uuid'::regtype AND oprright = 'text'::regtype
                   AND oprcode::oid <> 0) THEN
        CREATE OPERATOR <> (LEFTARG = uuid, RIGHTARG = text, FUNCTION = gmail_token_uuid_ne_text,
                            COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_operator WHERE oprname = '<>'
                   AND oprleft = 'text'::regtype AND oprright = 'uuid'::regtype
                   AND oprcode::oid <> 0) THEN
        CREATE OPERATOR <> (LEFTARG = text, RIGHTARG = uuid, FUNCTION = gmail_token_text_ne_uuid,
                            COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
    END IF;
END
$$;
