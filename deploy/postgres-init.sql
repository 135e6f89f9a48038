CREATE DATABASE resource OWNER notes;
