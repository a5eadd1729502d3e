// Every workflow the worker registers.
export { germlineWorkflow } from './germline';
