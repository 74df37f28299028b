-- Runs once, when the compose Postgres volume is first initialised: one
-- database per service that owns data (each service migrates its own schema).
CREATE DATABASE ams_account OWNER ams;
CREATE DATABASE ams_link OWNER ams;
