-- The analysis's other columns (id, grouping, period, rating) as JSON, beside column_name (the text
-- column); NULL when none was named. Cleared when the job is purged, like column_name.
ALTER TABLE sentiq_jobs ADD COLUMN analysis_options TEXT;
