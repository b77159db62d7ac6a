-- Failed sign-ins, by throttle key (`user:<name>@<address>`, `ip:<address>`),
-- shared by the replicas so that spreading guesses over them gains nothing.
CREATE TABLE sign_in_failures (
    key     text        PRIMARY KEY,
    count   integer     NOT NULL,
    last_at timestamptz NOT NULL
);
CREATE INDEX sign_in_failures_last_at ON sign_in_failures (last_at);
