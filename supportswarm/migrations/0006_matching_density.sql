-- Hubness correction of the answer vote (issue 3): a question's "density" is the mean cosine of its
-- vector to its 10 nearest other visible questions of the same model. A question that sits close to
-- many others (a hub: "I have a problem with my card") is near every query without answering it;
-- the vote subtracts a share of this value from its cosine (CSLS-style), measured in bench/README.md.
-- NULL: not computed yet; the vote then uses the other candidates' mean. Kept fresh by
-- supportswarm/matching/density.py: on embedding a question (it and its neighbours), after an import
-- or reindex (a batched pass) and once a day (JobName.REFRESH_DENSITY).
ALTER TABLE questions ADD COLUMN density real;
