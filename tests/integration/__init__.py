"""Tests against a real Apache Airflow 3.3.2: its Execution API, its supervisor, its runtime."""
