-- 0015: a platform with several CAs (docs/pki.md, "Several CAs"). A
-- product names the CA that issues its devices' certificates, by its name
-- (the CA's suite); '' is the platform's first CA, which every product
-- used before.

ALTER TABLE products ADD COLUMN issuing_ca text NOT NULL DEFAULT '' CHECK (length(issuing_ca) <= 64);
