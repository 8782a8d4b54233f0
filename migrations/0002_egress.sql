-- 0002_egress: an app's egress policy (docs/config.md#egress): which addresses and hosts its
-- outbound fetch() may connect to beyond the node's policy. NULL: none set. Otherwise the JSON
-- object {"allow": [...], "deny": [...]} as nano_egress_to_json writes it (entries as given,
-- each checked by nano_egress_parse_json before it is stored).
ALTER TABLE apps ADD COLUMN egress TEXT;
