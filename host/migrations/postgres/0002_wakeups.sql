-- Wake-ups across replicas: a replica's scheduler sleeps until the next run
-- it knows of; when a run may come due sooner (a new schedule, one moved
-- earlier, automatic imports turned on, a shorter interval), every replica
-- listening on `hrsync_schedules` looks again. Runs and claims move runs
-- later and wake nobody. Notifications are sent at commit, one per
-- transaction however many rows changed.

CREATE FUNCTION hrsync_schedule_sooner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hrsync_schedules', '');
    RETURN NULL;
END $$;

CREATE TRIGGER schedules_new AFTER INSERT ON schedules
    FOR EACH ROW EXECUTE FUNCTION hrsync_schedule_sooner();
CREATE TRIGGER schedules_sooner AFTER UPDATE OF next_run_at ON schedules
    FOR EACH ROW WHEN (NEW.next_run_at < OLD.next_run_at) EXECUTE FUNCTION hrsync_schedule_sooner();
CREATE TRIGGER integrations_automatic AFTER INSERT OR UPDATE ON integrations
    FOR EACH ROW WHEN (NEW.auto_import) EXECUTE FUNCTION hrsync_schedule_sooner();
