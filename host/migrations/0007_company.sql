-- The company the directory belongs to, as password emails name it. One
-- row at most; set from the Configuration tab, the API or the CLI.
CREATE TABLE company (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL CHECK (length(trim(name)) > 0),
    updated_at TEXT NOT NULL
);
