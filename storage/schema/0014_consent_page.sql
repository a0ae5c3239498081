-- Privacy policy catch-up (issue 6): accounts made since a version's announcement began that
-- neither accepted it nor were told (admins' accounts skip m.login.terms) are looked for every few
-- minutes by creation time, which this index keeps a range scan rather than a walk of every user.
CREATE INDEX users_creation_ts ON users (creation_ts);
