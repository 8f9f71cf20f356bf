"""Beat: schedules kept in the database, the scheduler that reads them, its dispatch guarantee."""
