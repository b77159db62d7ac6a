-- A due automatic run is claimed by moving its next-run time to the end
-- of the claim; `claimed` tells such a time from a scheduled one, so no
-- scheduler takes a claim for a schedule to shorten. Saving the schedule
-- after the run clears it.
ALTER TABLE schedules ADD COLUMN claimed boolean NOT NULL DEFAULT false;
