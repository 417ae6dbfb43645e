-- 0003: challenges move to memory (challenges.go explains why).
DROP TABLE challenges;
