"""A sweep or study folder on disk, read and written without Ray: the sweep spec (``spec``), its trials
(``records``), the comparison and confirmation plans (``compare_plan``, ``confirm_plan``), status tables
(``status``, ``study_status``), the study file and folder (``study_spec``, ``study_folder``), built-in presets
(``presets``) and export."""
